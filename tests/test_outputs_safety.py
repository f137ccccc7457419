"""Every `-o` of the CLI, and every input file: regular files only, nothing replaced behind
the user's back, no FIFO that blocks a command forever.

The CLI runs in a subprocess with a timeout where a FIFO is involved: a command that opened
one would block, and the timeout turns that into a failure instead of a hung suite.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from store.db import Store
from store.reviews import ReviewRepository
from store.workspace import init_workspace
from tests.conftest import clean_rows, write_jsonl
from tests.test_review import build_pair_workspace
from tui.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIFO_TIMEOUT_S = 60


def ftod_process(*args: str, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    def set_umask() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=FIFO_TIMEOUT_S,
        cwd=ROOT,
        preexec_fn=set_umask,
    )


def ftod(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def dataset_workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    init_workspace(folder)
    source = write_jsonl(tmp_path / "support.jsonl", clean_rows())
    assert (
        ftod("--workspace", str(folder), "data", "add", str(source), "--name", "s").exit_code == 0
    )
    return folder


def export(workspace: Path, *rest: str) -> Any:
    return ftod("--workspace", str(workspace), "data", "export", "s@1", *rest)


def review_export(workspace: Path, *rest: str) -> Any:
    return ftod(
        "--workspace", str(workspace), "review", "export", "--baseline", "base",
        "--candidate", "tuned", *rest,
    )  # fmt: skip


@pytest.fixture
def pair(tmp_path: Path) -> Path:
    workspace = build_pair_workspace(tmp_path / "pair")
    ReviewRepository(Store.open(workspace)).save_verdict(1, 2, 5, "alice", "candidate")
    return workspace.root.parent


Exporter = Callable[..., Any]


@pytest.fixture(params=["data", "review"])
def exporter(
    request: pytest.FixtureRequest, dataset_workspace: Path, pair: Path
) -> Callable[..., Any]:
    if request.param == "data":
        return lambda *rest: export(dataset_workspace, *rest)
    return lambda *rest: review_export(pair, *rest)


def test_an_existing_file_is_kept_without_force_and_replaced_with_it(
    exporter: Exporter, tmp_path: Path
) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("precious\n")
    refused = exporter("-o", str(target))
    assert refused.exit_code == 2 and "already exists; pass --force" in refused.output
    assert target.read_text() == "precious\n"
    replaced = exporter("-o", str(target), "--force")
    assert replaced.exit_code == 0, replaced.output
    assert "replaced the file that was there" in replaced.output
    assert target.read_text() != "precious\n" and json.loads(target.read_text().splitlines()[0])


def test_missing_parent_folders_are_not_created(exporter: Exporter, tmp_path: Path) -> None:
    result = exporter("-o", str(tmp_path / "new" / "out.jsonl"))
    assert result.exit_code == 2 and "does not exist; create it first" in result.output
    assert not (tmp_path / "new").exists()


def test_a_folder_or_device_is_refused_and_left_as_it_was(
    exporter: Exporter, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    result = exporter("-o", str(folder), "--force")
    assert result.exit_code == 2 and "is a folder, not a regular file" in result.output
    for device in (Path("/dev/null"), Path("/dev/full")):
        if not device.exists():
            continue
        before = device.stat()
        result = exporter("-o", str(device), "--force")
        assert result.exit_code == 2 and "character device" in result.output, result.output
        after = device.stat()
        assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_a_symlink_is_written_through(exporter: Exporter, tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    result = exporter("-o", str(link), "--force")
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and real.read_text() != "old\n"


def test_proc_files_are_an_input_error_not_a_bug(exporter: Exporter) -> None:
    if not Path("/proc/version").is_file():
        pytest.skip("no /proc/version here")
    result = exporter("-o", "/proc/version", "--force")
    assert result.exit_code == 2 and "bug in ftod" not in result.output


def test_outputs_keep_the_umask_mode(dataset_workspace: Path, tmp_path: Path) -> None:
    target = tmp_path / "shared.jsonl"
    result = ftod_process(
        "--workspace", str(dataset_workspace), "data", "export", "s@1", "-o", str(target),
        umask=0o022,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_fifo_as_output_is_refused_without_blocking(
    dataset_workspace: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = ftod_process(
        "--workspace", str(dataset_workspace), "data", "export", "s@1", "-o", str(fifo), "--force"
    )
    assert result.returncode == 2 and "FIFO" in result.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_fifo_or_folder_as_any_input_file_fails_fast_with_exit_2(
    dataset_workspace: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    ws = ["--workspace", str(dataset_workspace)]
    commands = [
        ["data", "check", "{}"],
        ["data", "check", str(ROOT / "sample_runs" / "support-lora.yaml"), "--against", "{}"],
        [*ws, "data", "add", "{}", "--name", "x"],
        [*ws, "eval", "import", "--data", "s@1", "--outputs", "{}", "--label", "x"],
        [*ws, "prompt", "add", "p", "--file", "{}"],
        [*ws, "runs", "import", "{}"],
        [*ws, "train", "{}"],
        [*ws, "gate", "--spec", "{}", "--baseline", "a", "--candidate", "b"],
        [*ws, "judge", "--baseline", "a", "--candidate", "b", "--model", "m", "--template", "{}"],
    ]
    for command in commands:
        args = [part.replace("{}", str(fifo)) for part in command]
        result = ftod_process(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "FIFO (named pipe), not a regular file" in result.stderr, (args, result.stderr)
    # A folder is "not a regular file" too, never "no such file" (train's click check says
    # "is a directory" itself, and runs import accepts an output folder).
    for command in commands:
        if command[-2:] == ["train", "{}"] or ("import" in command and "runs" in command):
            continue
        args = [part.replace("{}", str(tmp_path)) for part in command]
        result = ftod(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "is a folder, not a regular file" in result.output, (args, result.output)
