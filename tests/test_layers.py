"""The core and the store import neither textual nor torch (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import sys
import core, core.scan, core.datasets, core.splits, core.checks.pii, core.checks.minhash
import core.runs.rundir, core.runs.config, core.runs.launch, core.runs.ingest, core.runs.monitor
import core.runs.imports, core.runs.series, core.runs.validate, core.runs.failures, core.gpu, core.train
import core.evals.stats, core.evals.scorers, core.evals.gate, core.evals.outputs, core.evals.service
import core.evals.review, core.evals.prompts, core.evals.generate, core.evals.judge, core.runs.vram
import store, store.db, store.datasets, store.runs, store.evals, store.reviews, store.prompts, store.judges
heavy = sorted(m for m in ("textual", "torch", "transformers", "rich") if m in sys.modules)
print(",".join(heavy))
"""


def test_core_and_store_import_no_textual_or_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_store_does_not_import_core() -> None:
    for path in (ROOT / "store").glob("*.py"):
        text = path.read_text()
        assert "from core" not in text and "import core" not in text, path
        assert "import textual" not in text and "from textual" not in text, path


def test_core_does_not_import_tui() -> None:
    for path in (ROOT / "core").rglob("*.py"):
        text = path.read_text()
        assert "from tui" not in text and "import tui" not in text, path
