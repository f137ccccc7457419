"""Reading the small text files a user names (a JSON schema, a judge template, a scorer file).

Each is read whole into memory, so the size is bounded before and during the read: a
`/dev/urandom` or a 100 MB template must fail with a message, not grow ftod to gigabytes. A
FIFO, a device or a folder is refused before it is opened, since opening or reading one can
block forever or never end.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from store.errors import InputError

SMALL_FILE_LIMIT = 1 << 20
"""1 MiB: far above any real schema, template or scorer file."""


def check_regular_file(path: Path, what: str, limit: int = SMALL_FILE_LIMIT) -> Path:
    """`path` resolved, or InputError when it is missing, not a regular file, or too large."""
    resolved = path.expanduser()
    try:
        info = os.stat(resolved)
    except FileNotFoundError as error:
        raise InputError(f"{what} {path}: no such file") from error
    except OSError as error:
        raise InputError(f"{what} {path}: cannot read ({error.strerror})") from error
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{what} {path}: not a regular file")
    if info.st_size > limit:
        raise InputError(
            f"{what} {path}: {info.st_size:,} bytes, larger than the {limit:,}-byte limit"
        )
    return resolved


def read_small_text(path: Path, what: str, limit: int = SMALL_FILE_LIMIT) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes; InputError otherwise."""
    resolved = check_regular_file(path, what, limit)
    try:
        with resolved.open("rb") as handle:
            # The stat above can be stale (the file grew, or was swapped): read one byte past
            # the limit so a file that is larger now is still refused, never read whole.
            data = handle.read(limit + 1)
    except OSError as error:
        raise InputError(f"{what} {path}: cannot read ({error.strerror})") from error
    if len(data) > limit:
        raise InputError(f"{what} {path}: larger than the {limit:,}-byte limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{what} {path}: not UTF-8 text ({error})") from error
