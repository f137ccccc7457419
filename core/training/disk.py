"""A full disk as a run state: recognised wherever the write failed, with room kept to say so.

Writers report ENOSPC in different clothes: an OSError from Python's own files, a
SafetensorError naming "os error 28", and from torch.save only "unexpected pos" (the
C++ writer drops the errno), which is why checkpoints also check free space first.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

RESERVE_BYTES = 1024 * 1024
"""Kept allocated in the run directory and deleted to write the last event and status."""

_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_NO_SPACE_MARKERS = ("no space left on device", "os error 28", "disk quota exceeded")


class DiskFull(Exception):
    def __init__(self, folder: Path, detail: str) -> None:
        super().__init__(f"{folder}: {detail}")
        self.folder = folder


def is_disk_full(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFull):
            return True
        if isinstance(current, OSError) and current.errno in _NO_SPACE_ERRNOS:
            return True
        if any(marker in str(current).lower() for marker in _NO_SPACE_MARKERS):
            return True
        current = current.__cause__ or current.__context__
    return False


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def require_free(folder: Path, needed: int) -> None:
    free = free_bytes(folder)
    if free < needed:
        raise DiskFull(folder, f"{needed} bytes needed, {free} free")


def _allocate(fd: int, size: int) -> bool:
    """Reserve real blocks (written zeros may stay sparse); False where unsupported."""
    if not hasattr(os, "posix_fallocate"):
        return False
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as error:
        if error.errno in _NO_SPACE_ERRNOS:
            raise
        return False
    return True


class DiskReserve:
    """A file holding RESERVE_BYTES of the run's disk while the trainer runs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def claim(self) -> None:
        """Raises DiskFull when even the reserve does not fit."""
        try:
            with self.path.open("wb") as handle:
                if not _allocate(handle.fileno(), RESERVE_BYTES):
                    # No fallocate (macOS, some filesystems): the bytes written still count.
                    handle.write(b"\0" * RESERVE_BYTES)
                    handle.flush()
        except OSError as error:
            self.release()
            if error.errno in _NO_SPACE_ERRNOS:
                raise DiskFull(self.path.parent, "no room for the trainer's reserve") from error
            raise

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
