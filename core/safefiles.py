"""Crash-safe files: every file ftod writes or reads whole goes through here.

Three shapes of write:
- `atomic_replace`: a whole file written to a temporary sibling, fsynced, then renamed
  over the target, so a reader (or a crash) sees the old file or the new one, never half;
  the temporary file is removed on any error, a full disk included.
- `append_durably`: records appended to a checkpoint and fsynced, so a crash loses at
  most the batch being written; `finished_lines` reads such a file back and cuts off a
  torn last line.
- `output_file`: what the CLI's `-o` writes: refuses devices, FIFOs and folders, writes
  through a symlink to the real file, keeps the umask's mode, never creates folders, and
  replaces an existing file only when asked to.

And one check for inputs, `require_regular_file`, so that a FIFO never blocks a command
and a folder is never called "no such file".
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from store.errors import InputError, environment_problem

# Files ftod reads whole (configs, specs, templates, prompt files) are small by nature; a
# larger one is a wrong path, and reading it whole would only exhaust memory.
MAX_WHOLE_FILE_BYTES = 64 * 2**20


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def _new_file_mode() -> int:
    # The mode open() would give a new file; mkstemp's 0600 would make every output private.
    # os.umask is the only portable way to read it: set it and put it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; file systems that cannot sync a folder are skipped."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


@contextmanager
def atomic_replace(path: Path, *, mode: int | None = None) -> Iterator[BinaryIO]:
    """Yield a binary handle whose bytes replace `path` when the block ends without error.

    The new file gets `mode`, else the mode of the file it replaces, else the umask's.
    """
    path = Path(path)
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = _new_file_mode()
    try:
        descriptor, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as error:
        if environment_problem(error) is not None:
            raise  # a full or read-only disk: reported as the environment's problem
        # /proc, /sys and the like hold files that cannot be replaced.
        raise InputError(
            f"{path}: no file can be written in {path.parent} ({error.strerror})"
        ) from error
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_folder(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_replace(path) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def append_durably(path: Path, records: Iterable[bytes]) -> None:
    """Append each record (a complete line, newline included) and fsync before returning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as handle:
        for record in records:
            handle.write(record)
        handle.flush()
        os.fsync(handle.fileno())


def finished_lines(path: Path) -> list[bytes]:
    """The complete lines of an append-only checkpoint; a torn last line (a crash mid-write)
    is cut off the file, so appending after it starts on a fresh line."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with path.open("r+b") as handle:
            handle.truncate(end)
    return data[:end].splitlines()


def output_target(path: Path, *, overwrite: bool, option: str = "-o") -> tuple[Path, bool]:
    """The real file `path` names and whether it exists already; InputError when writing
    there would do something other than write a regular file."""
    path = Path(path)
    # A symlink is written through, as `>` does: the link stays and its target changes.
    real = Path(os.path.realpath(path))
    try:
        found = os.stat(real)
    except FileNotFoundError:
        found = None
    except OSError as error:
        raise InputError(f"{option} {path}: cannot be checked ({error.strerror})") from error
    if found is not None and not stat.S_ISREG(found.st_mode):
        raise InputError(
            f"{option} {path} is {_kind(found.st_mode)}, not a regular file; give the path of "
            "a file to write (or - for stdout)"
        )
    if found is not None and not overwrite:
        raise InputError(f"{option} {path} already exists; pass --force to replace it")
    if not real.parent.is_dir():
        raise InputError(f"{option} {path}: folder {real.parent} does not exist; create it first")
    return real, found is not None


@contextmanager
def output_file(path: Path, *, overwrite: bool, option: str = "-o") -> Iterator[BinaryIO]:
    """A handle for a user-named output file, replaced atomically when the block ends."""
    real, _exists = output_target(path, overwrite=overwrite, option=option)
    with atomic_replace(real) as handle:
        yield handle


def require_regular_file(path: Path, what: str, *, max_bytes: int | None = None) -> Path:
    """`path` unchanged when it is a regular file (or missing, which the reader reports in
    its own words); InputError for FIFOs, devices, sockets and folders, which would block a
    reader or read as nonsense, and for a file read whole that is larger than `max_bytes`."""
    path = Path(path)
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return path
    except OSError as error:
        raise InputError(f"{what} {path}: cannot be read ({error.strerror})") from error
    if not stat.S_ISREG(found.st_mode):
        raise InputError(f"{what} {path} is {_kind(found.st_mode)}, not a regular file")
    if max_bytes is not None and found.st_size > max_bytes:
        raise InputError(
            f"{what} {path} is {found.st_size / 2**20:.1f} MiB; at most "
            f"{max_bytes / 2**20:.0f} MiB is read whole"
        )
    return path
