"""Ingest of run directories into the runs index: wide columns, the v6 → v7 migration, and
one bad run directory that must not take the workspace's runs down with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import store.db
from core.runs.ingest import ingest_runs
from core.runs.rundir import EventWriter, RunPaths, RunStatus, atomic_write_json, write_status
from store.db import Store
from store.migrations import MIGRATIONS
from store.runs import RunRepository
from store.workspace import Workspace, init_workspace

REPO = Path(__file__).resolve().parents[1]
BIG_STEP = 2**31 + 7  # past INTEGER
BIG_TOKENS = 2**70  # past BIGINT


def make_run(
    workspace: Workspace,
    run_id: str,
    *,
    steps: list[int],
    tokens: int = 1000,
    status_step: Any = None,
    lineage: Any = None,
) -> RunPaths:
    """A finished native-looking run directory, written by hand as a trainer would."""
    paths = RunPaths(workspace.runs_dir / run_id)
    paths.root.mkdir(parents=True)
    atomic_write_json(
        paths.run_json,
        {
            "run_id": run_id,
            "name": run_id,
            "created_at": 1_790_000_000.0,
            "source": "ftod",
            "config": {},
            "lineage": {"seed": 0} if lineage is None else lineage,
        },
    )
    last = steps[-1] if steps else 0
    write_status(
        paths,
        RunStatus(
            run_id=run_id,
            state="succeeded",
            step=last if status_step is None else status_step,
            total_steps=last,
        ),
    )
    with EventWriter(paths.events) as events:
        events.write({"type": "start", "time": 1.0, "step": 0, "total_steps": last})
        for step in steps:
            events.write(
                {"type": "train", "time": 2.0, "step": step, "loss": 1.5, "tokens": tokens}
            )
    return paths


def column_types(store_: Store) -> dict[str, str]:
    with store_.reading() as connection:
        rows = connection.execute(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_name IN ('runs', 'run_metrics')"
        ).fetchall()
    return dict(rows)


def test_steps_past_int32_and_tokens_past_int64_are_indexed_exactly(tmp_path: Path) -> None:
    workspace, _ = init_workspace(tmp_path / "project")
    make_run(workspace, "big", steps=[BIG_STEP - 1, BIG_STEP], tokens=BIG_TOKENS)
    repository = RunRepository(Store.open(workspace))
    report = ingest_runs(workspace, repository)
    assert report.skipped == []
    (record,) = repository.list_runs()
    assert (record.step, record.total_steps) == (BIG_STEP, BIG_STEP)
    metrics = repository.metrics("big", "train")
    assert metrics["step"] == [BIG_STEP - 1, BIG_STEP]
    assert metrics["tokens"] == [BIG_TOKENS, BIG_TOKENS]


def test_a_version_6_store_migrates_keeping_its_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as old_ftod:
        # The store as ftod wrote it before migration 7: INTEGER steps, BIGINT tokens.
        old_ftod.setattr(store.db, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 6])
        workspace, _ = init_workspace(tmp_path / "project")
        old = Store.open(workspace)
        assert old.schema_version() == 6
        assert column_types(old)["run_metrics.step"] == "INTEGER"
        make_run(workspace, "before", steps=[1, 2, 3], tokens=2**40)
        ingest_runs(workspace, RunRepository(old))
    migrated = Store.open(workspace)
    assert migrated.schema_version() == max(version for version, _ in MIGRATIONS)
    types = column_types(migrated)
    assert types["run_metrics.step"] == "BIGINT"
    assert types["run_metrics.tokens"] == "HUGEINT"
    assert types["runs.step"] == types["runs.total_steps"] == "BIGINT"
    repository = RunRepository(migrated)
    assert repository.metrics("before", "train")["tokens"] == [2**40] * 3
    assert repository.metric_count("before") == {"train": 3}
    with migrated.reading() as connection:
        keys = connection.execute(
            "SELECT constraint_type FROM information_schema.table_constraints "
            "WHERE table_name = 'run_metrics'"
        ).fetchall()
    assert ("PRIMARY KEY",) in keys  # re-ingesting a step still replaces it
    make_run(workspace, "after", steps=[BIG_STEP], tokens=BIG_TOKENS)
    report = ingest_runs(workspace, repository)
    assert report.skipped == []
    assert repository.metrics("after", "train")["tokens"] == [BIG_TOKENS]
    assert {record.run_id for record in repository.list_runs()} == {"before", "after"}


def poison(workspace: Workspace) -> dict[str, str]:
    """Run directories no index can hold, each bad in another way, by folder name."""
    make_run(workspace, "p-status-step", steps=[1], status_step=2**64)
    make_run(workspace, "p-tokens", steps=[1, 2], tokens=10**40)
    make_run(workspace, "p-lineage", steps=[1], lineage=["not", "a", "mapping"])
    return {
        "p-status-step": "step 18446744073709551616 is out of range",
        "p-tokens": "tokens 10000000000000000000000000000000000000000 is out of range",
        "p-lineage": "ValueError",
    }


def test_a_bad_run_directory_is_skipped_with_its_reason_and_the_others_indexed(
    tmp_path: Path,
) -> None:
    workspace, _ = init_workspace(tmp_path / "project")
    make_run(workspace, "good", steps=[1, 2])
    reasons = poison(workspace)
    repository = RunRepository(Store.open(workspace))
    report = ingest_runs(workspace, repository)
    assert [record.run_id for record in repository.list_runs()] == ["good"]
    assert repository.metric_count("good") == {"train": 2}
    skipped = {item.run_id: item for item in report.skipped}
    assert set(skipped) == set(reasons)
    for run_id, reason in reasons.items():
        assert reason in skipped[run_id].reason
        assert str(workspace.runs_dir / run_id) in skipped[run_id].warning()
    # Still skipped (and still said) on the next ingest; the good run is not rewritten.
    again = ingest_runs(workspace, repository)
    assert {item.run_id for item in again.skipped} == set(reasons)
    assert again.runs_updated == 0


def ftod(workspace: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "--workspace", str(workspace.root), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_runs_command_keeps_working_beside_a_poisoned_run_directory(
    tmp_path: Path,
) -> None:
    workspace, _ = init_workspace(tmp_path / "project")
    make_run(workspace, "good", steps=[1, 2])
    reasons = poison(workspace)
    queued = make_run(workspace, "p-queued", steps=[1], status_step=2**64)
    write_status(queued, RunStatus(run_id="p-queued", state="queued", step=2**64))

    listed = ftod(workspace, "runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [run["id"] for run in json.loads(listed.stdout)] == ["good"]
    for run_id in reasons:
        assert f"{workspace.runs_dir / run_id} was skipped" in listed.stderr

    shown = ftod(workspace, "runs", "show", "good", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["metrics_logged"] == {"train": 2}

    refused = ftod(workspace, "runs", "show", "p-tokens")
    assert refused.returncode == 2, refused.stderr
    assert "tokens 10000000000000000000000000000000000000000 is out of range" in refused.stderr

    log = tmp_path / "trainer_state.json"
    log.write_text(json.dumps({"log_history": [{"loss": 1.0, "step": 3}], "max_steps": 3}))
    imported = ftod(workspace, "runs", "import", str(log), "--name", "fresh")
    assert imported.returncode == 0, imported.stderr

    cancelled = ftod(workspace, "runs", "cancel", "p-queued", "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["state"] == "cancelled"

    names = {run["name"] for run in json.loads(ftod(workspace, "runs", "list", "--json").stdout)}
    assert names == {"good", "fresh"}
