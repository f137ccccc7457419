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


def test_kill_9_during_judge_keeps_finished_readings_for_resume(tmp_path: Path) -> None:
    """A real `ftod judge run` killed mid-run: nothing stored, finished readings kept, and
    `--resume` completes the run without judging them again."""
    from core.evals.judge import judge_partial_path, read_judge_checkpoint
    from core.evals.service import import_eval
    from store.evals import EvalRepository
    from store.judges import JudgeRepository
    from store.workspace import init_workspace
    from tests.conftest import chat

    workspace, _ = init_workspace(tmp_path / "project")
    rows = [
        chat(f"Ticket {i}: where is order {i * 7}?", f"Order {i * 7} ships today.")
        for i in range(300)
    ]
    store = Store.open(workspace)
    datasets, evals = DatasetRepository(store), EvalRepository(store)
    add_dataset(workspace, datasets, write_jsonl(tmp_path / "d.jsonl", rows), "tickets")
    for label, text in (("base", "It ships soon."), ("tuned", "Order ships today.")):
        outputs = [{"line": i + 1, "output": f"{text} ({i})"} for i in range(300)]
        import_eval(
            datasets, evals, "tickets@1", write_jsonl(tmp_path / f"{label}.jsonl", outputs), label
        )
    model = ROOT / "sample_runs" / "base_model"
    command = [
        *(sys.executable, "-m", "tui.cli", "--workspace", str(workspace.root), "judge", "run"),
        *("--baseline", "base", "--candidate", "tuned", "--model", str(model), "--batch-size", "1"),
    ]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    partial = judge_partial_path(workspace, 1, 2)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(read_judge_checkpoint(partial)) < 20:
        assert process.poll() is None, "the judge finished before it could be killed"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    judges = JudgeRepository(Store.open(workspace))
    assert judges.runs(1, 2) == []
    kept = len(read_judge_checkpoint(partial))
    assert 20 <= kept < 600
    resumed = subprocess.run(
        [*command, "--resume", "--json"], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    (run,) = judges.runs(1, 2)
    assert run.examples == 300 and len(judges.verdicts(run.judge_id)) == 300
    assert not partial.exists()
