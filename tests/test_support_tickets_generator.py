"""sample_runs/make_support_tickets.py (a short generator over JSON template files) still
writes the committed sample datasets byte for byte."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

SAMPLE_RUNS = Path(__file__).resolve().parent.parent / "sample_runs"
OUTPUTS = (
    "support_tickets.jsonl",
    "support_tickets_v2.jsonl",
    "heldout_eval.jsonl",
    "PLANTED.json",
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_generator_reproduces_the_committed_sample_data(tmp_path: Path) -> None:
    # A copy writes beside itself, so the committed files are only read.
    copy = tmp_path / "sample_runs"
    copy.mkdir()
    shutil.copy(SAMPLE_RUNS / "make_support_tickets.py", copy)
    shutil.copytree(SAMPLE_RUNS / "support_ticket_templates", copy / "support_ticket_templates")
    done = subprocess.run(
        [sys.executable, str(copy / "make_support_tickets.py")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for name in OUTPUTS:
        made, committed = copy / "support_tickets" / name, SAMPLE_RUNS / "support_tickets" / name
        assert sha256(made) == sha256(committed), name


def test_the_template_text_lives_in_the_json_files_not_the_code() -> None:
    script = (SAMPLE_RUNS / "make_support_tickets.py").read_text(encoding="utf-8")
    templates = SAMPLE_RUNS / "support_ticket_templates"
    for file, phrase in (
        ("catalog", "active noise cancellation with three strength levels"),
        ("scenarios", "My order {order} [still hasn't arrived"),
        ("slices", "Look up an order by its order number."),
    ):
        assert phrase in (templates / f"{file}.json").read_text(encoding="utf-8"), file
        assert phrase not in script, phrase
