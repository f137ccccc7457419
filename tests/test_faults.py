"""Fault injection: a `data add` killed with SIGKILL at any moment leaves the store whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core.datasets import add_dataset
from store.datasets import DatasetRepository
from store.db import Store
from store.errors import NotFoundError
from tests.conftest import write_jsonl
from tests.test_splits import synthetic_rows

ROOT = Path(__file__).resolve().parent.parent


def test_kill_9_during_add_leaves_no_half_version(workspace: Any, tmp_path: Path) -> None:
    Store.open(workspace)
    path = write_jsonl(tmp_path / "big.jsonl", synthetic_rows(60_000))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tui.cli",
            "--workspace",
            str(workspace.root),
            "data",
            "add",
            str(path),
            "--name",
            "big",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # Kill it once it has started staging rows (mid-scan), not before.
    deadline = time.monotonic() + 60
    staging = workspace.root / "tmp"
    while time.monotonic() < deadline and not list(staging.glob("ingest-*")):
        time.sleep(0.02)
    assert list(staging.glob("ingest-*")), "the add never started staging"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    repository = DatasetRepository(Store.open(workspace))
    try:
        versions = repository.versions("big")
    except NotFoundError:
        versions = []
    assert versions == []  # nothing half-written: no version, so no partial examples
    with repository.store.reading() as connection:
        row = connection.execute("SELECT count(*) FROM examples").fetchone()
    assert row is not None and row[0] == 0
    assert list(staging.glob("ingest-*"))  # the killed process left its staging file...

    outcome = add_dataset(workspace, repository, path, "big")  # ...the next add succeeds
    assert outcome.created and outcome.version.rows_total == 60_000
    assert list(staging.glob("ingest-*")) == []  # ...and cleaned the orphan up
