"""core.safefiles: atomic replace, durable append, torn-line reads, -o targets, input checks."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.runs.rundir import RunPaths, RunStatus, atomic_write_json, read_json, write_status
from core.safefiles import (
    append_durably,
    atomic_replace,
    atomic_write_text,
    finished_lines,
    output_file,
    output_target,
    require_regular_file,
)
from store.errors import InputError
from tests.filesystems import fill, leftovers, tmpfs


@pytest.fixture
def umask_027() -> Iterator[None]:
    previous = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(previous)


def test_atomic_replace_writes_whole_file_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_an_error_mid_write_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_replace(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_new_files_get_the_umask_mode_and_replaced_files_keep_theirs(
    tmp_path: Path, umask_027: None
) -> None:
    fresh = tmp_path / "fresh.txt"
    atomic_write_text(fresh, "x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640
    private = tmp_path / "private.txt"
    private.write_text("x")
    private.chmod(0o600)
    atomic_write_text(private, "y")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_a_full_disk_leaves_no_zero_byte_status_temporaries(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "1m") as disk:
        paths = RunPaths(disk / "run")
        paths.root.mkdir()
        write_status(paths, RunStatus(run_id="run", state="running", message="step 1"))
        fill(disk)
        with pytest.raises(OSError) as caught:
            write_status(paths, RunStatus(run_id="run", state="running", message="x" * 8192))
        assert caught.value.errno == errno.ENOSPC
        assert leftovers(disk) == []
        before = read_json(paths.status_json)
        assert before is not None and before["message"] == "step 1"
        with pytest.raises(OSError):
            atomic_write_json(disk / "other.json", {"big": "y" * 65536})
        assert leftovers(disk) == []


def test_finished_lines_cuts_a_torn_last_line_so_appends_start_fresh(tmp_path: Path) -> None:
    checkpoint = tmp_path / "partial.jsonl"
    append_durably(checkpoint, [b'{"line": 1}\n', b'{"line": 2}\n'])
    with checkpoint.open("ab") as handle:
        handle.write(b'{"line": 3, "outp')  # the crash
    assert finished_lines(checkpoint) == [b'{"line": 1}', b'{"line": 2}']
    append_durably(checkpoint, [b'{"line": 3}\n'])
    assert finished_lines(checkpoint)[-1] == b'{"line": 3}'
    assert finished_lines(tmp_path / "missing.jsonl") == []


def test_regular_files_pass_and_missing_paths_are_left_to_the_reader(tmp_path: Path) -> None:
    regular = tmp_path / "a.yaml"
    regular.write_text("x: 1")
    assert require_regular_file(regular, "config") == regular
    assert require_regular_file(tmp_path / "missing", "config") == tmp_path / "missing"
    with pytest.raises(InputError, match=r"0\.0 MiB; at most"):
        require_regular_file(regular, "config", max_bytes=1)


def test_fifos_folders_and_devices_are_not_regular_files(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"FIFO .*not a regular file"):
        require_regular_file(fifo, "dataset file")
    with pytest.raises(InputError, match="is a folder, not a regular file"):
        require_regular_file(tmp_path, "dataset file")
    if Path("/dev/null").exists():
        with pytest.raises(InputError, match="character device"):
            require_regular_file(Path("/dev/null"), "dataset file")


def test_output_targets_refuse_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for target in (fifo, tmp_path):
        with pytest.raises(InputError, match="not a regular file"):
            output_target(target, overwrite=True)
    with pytest.raises(InputError, match="does not exist; create it first"):
        output_target(tmp_path / "no" / "out.jsonl", overwrite=True)
    assert not (tmp_path / "no").exists()
    existing = tmp_path / "out.jsonl"
    existing.write_text("keep")
    with pytest.raises(InputError, match="already exists; pass --force"):
        output_target(existing, overwrite=False)
    assert output_target(existing, overwrite=True) == (existing, True)
    assert output_target(tmp_path / "new.jsonl", overwrite=False) == (tmp_path / "new.jsonl", False)


def test_output_file_writes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text("old")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    with output_file(link, overwrite=True) as handle:
        handle.write(b"new")
    assert link.is_symlink() and real.read_text() == "new"
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to(tmp_path / "later.jsonl")
    with output_file(dangling, overwrite=False) as handle:
        handle.write(b"made")
    assert dangling.is_symlink() and (tmp_path / "later.jsonl").read_text() == "made"
