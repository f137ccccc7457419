"""A full disk and a read-only workspace are the environment's problems, said as such (exit
3, what to do), never "a bug in ftod"; commands that only read still work, and no temporary
file is left behind. Real file systems: a small tmpfs, filled or remounted read-only."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from core.runs.imports import create_imported_run
from store.errors import EnvironmentProblem, environment_problem
from store.workspace import init_workspace
from tests.conftest import chat, clean_rows, write_jsonl
from tests.filesystems import fill, leftovers, remount_read_only, tmpfs

ROOT = Path(__file__).resolve().parent.parent
TRAINER_STATE = (
    ROOT
    / "tests"
    / "fixtures"
    / "trainer_logs"
    / "hf_trainer_state__trl_sft_lora_tinyllama__eval_rows_best_metric.json"
)


def ftod(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "--workspace", str(project), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def more_rows() -> list[dict[str, object]]:
    return [chat(f"Another question {i} about lamps?", f"Answer {i} " * 40) for i in range(200)]


@pytest.fixture
def disk_workspace(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """(disk, project, pending run id): a workspace with one dataset on its own tmpfs, and a
    run folder the store has not ingested yet (so a `runs list` wants to write)."""
    with tmpfs(tmp_path / "disk", "24m") as disk:
        project = disk / "project"
        workspace, _ = init_workspace(project)
        source = write_jsonl(tmp_path / "support.jsonl", clean_rows())
        added = ftod(project, "data", "add", str(source), "--name", "s")
        assert added.returncode == 0, added.stderr
        run = create_imported_run(workspace.runs_dir, TRAINER_STATE, name="pending")
        yield disk, project, run.run_id


def test_the_mapping_covers_oserrors_and_duckdb_texts() -> None:
    full = environment_problem(OSError(errno.ENOSPC, "No space left on device", "/x/y"))
    assert isinstance(full, EnvironmentProblem) and full.exit_code == 3
    assert "disk is full" in full.message and "/x/y" in full.message
    read_only = environment_problem(
        duckdb.IOException('Cannot open file "/w/ftod.duckdb": Read-only file system')
    )
    assert read_only is not None and "read-only" in read_only.message
    assert environment_problem(OSError(errno.EMFILE, "Too many open files")) is not None
    assert environment_problem(OSError(errno.ENOENT, "No such file")) is None
    assert environment_problem(ValueError("No space left on device")) is None


def test_a_full_disk_gives_exit_3_with_advice_and_leaves_nothing_behind(
    disk_workspace: tuple[Path, Path, str], tmp_path: Path
) -> None:
    disk, project, run_id = disk_workspace
    bigger = write_jsonl(tmp_path / "more.jsonl", more_rows())
    fill(disk)
    for args in (
        ("data", "add", str(bigger), "--name", "more"),
        ("runs", "import", str(TRAINER_STATE), "--name", "again"),
        ("data", "export", "s@1", "-o", str(disk / "out.jsonl")),
    ):
        result = ftod(project, *args)
        assert result.returncode == 3, (args, result.stderr)
        assert "disk is full" in result.stderr and "Free some space" in result.stderr, args
        assert "bug in ftod" not in result.stderr
        assert leftovers(disk) == [], args
    assert not (disk / "out.jsonl").exists()
    assert sorted(p.name for p in (project / ".ftod" / "runs").iterdir()) == [run_id]
    # Reading commands still answer, from what the store has, and say why it is not newer.
    listed = ftod(project, "runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [] and "disk is full" in listed.stderr
    assert ftod(project, "runs", "show", run_id).returncode == 0
    shown = ftod(project, "data", "show", "s", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["ref"] == "s@1"


def test_a_read_only_workspace_still_lists_and_shows(
    disk_workspace: tuple[Path, Path, str], tmp_path: Path
) -> None:
    disk, project, run_id = disk_workspace
    remount_read_only(disk)
    listed = ftod(project, "runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [] and "read-only" in listed.stderr
    shown = ftod(project, "runs", "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["id"] == run_id and view["lineage"]["format"] == "hf_trainer_state"
    data = ftod(project, "data", "list", "--json")
    assert data.returncode == 0 and [d["name"] for d in json.loads(data.stdout)] == ["s"]
    added = ftod(project, "data", "add", str(write_jsonl(tmp_path / "m.jsonl", more_rows())),
                 "--name", "more")  # fmt: skip
    assert added.returncode == 3 and "read-only" in added.stderr, added.stderr
    assert "bug in ftod" not in added.stderr
    exported = ftod(project, "data", "export", "s@1", "-o", str(disk / "out.jsonl"))
    assert exported.returncode == 3 and "read-only" in exported.stderr, exported.stderr
