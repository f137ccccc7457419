"""Errors that carry a title and a message a person can act on.

The CLI prints them without a traceback and exits with `exit_code`; the TUI shows them
in a modal. Defined in the store layer because every layer above raises them.
"""

from __future__ import annotations

import errno


class FtodError(Exception):
    """Base for every error ftod reports to a person rather than as a traceback."""

    exit_code: int = 2
    title: str = "ftod error"

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title

    def __str__(self) -> str:
        return self.message


class InputError(FtodError):
    """The user's input (a file, an argument, a name) cannot be used."""

    title = "Unusable input"

    def __init__(self, message: str, *, title: str | None = None, field: str | None = None) -> None:
        super().__init__(message, title=title)
        self.field = field
        """The setting the error is about (a dotted path such as train.lr), so a form
        can mark it without reading the message; None when it names no one setting."""


class NotFoundError(FtodError):
    """A named thing (dataset, version, split) does not exist."""

    title = "Not found"


class WorkspaceError(FtodError):
    """No workspace, or one that cannot be opened."""

    title = "Workspace"


class StoreBusyError(FtodError):
    """Another process kept the store locked past our deadline."""

    title = "Store busy"
    exit_code = 3


class ChecksFailed(FtodError):
    """`--strict` refused a file because it has error findings."""

    title = "Checks failed"
    exit_code = 1


class EnvironmentProblem(FtodError):
    """The machine, not the input or ftod: a full disk, a read-only or forbidden workspace,
    too many open files, a failing disk. Exit 3, like a busy store: try again once fixed."""

    title = "Environment problem"
    exit_code = 3


class StoreDamaged(FtodError):
    """The DuckDB file cannot be read back as written (truncated, overwritten, corrupted)."""

    title = "Store damaged"
    exit_code = 3


_FULL = (
    "Free some space on that file system (or point --workspace elsewhere) and run the command "
    "again; nothing half-written was kept."
)
_DENIED = (
    "Check the owner and mode of the workspace and its files (ls -l); run ftod as the user that "
    "owns them. `list` and `show` commands still work on a workspace they can only read."
)
_TOO_MANY = "Raise the limit (ulimit -n) or close other programs, then run the command again."

# errno → what went wrong and what to do. By number, because OSError messages vary by
# platform; DuckDB reports the same conditions only as text (matched below).
_ENVIRONMENT_ERRNOS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", _FULL),
    errno.EDQUOT: ("the disk quota is used up", _FULL),
    errno.EROFS: (
        "the file system is read-only",
        "Remount it writable or copy the workspace to a writable place; `list` and `show` "
        "commands still work on a read-only workspace.",
    ),
    errno.EACCES: ("permission denied", _DENIED),
    errno.EPERM: ("operation not permitted", _DENIED),
    errno.EMFILE: ("too many open files", _TOO_MANY),
    errno.ENFILE: ("too many open files in the system", _TOO_MANY),
    errno.EIO: (
        "an I/O error from the disk",
        "The disk or file system may be failing: check `dmesg`, and copy the workspace to "
        "another disk.",
    ),
}


# The strerror texts DuckDB copies into its messages, in the order they are checked.
_ENVIRONMENT_TEXTS: tuple[tuple[str, int], ...] = (
    ("No space left on device", errno.ENOSPC),
    ("Disk quota exceeded", errno.EDQUOT),
    ("Read-only file system", errno.EROFS),
    ("Permission denied", errno.EACCES),
    ("Operation not permitted", errno.EPERM),
    ("Too many open files", errno.EMFILE),
    ("Input/output error", errno.EIO),
)


def _is_duckdb_error(error: BaseException) -> bool:
    return type(error).__module__.lstrip("_").startswith("duckdb")


def environment_problem(error: BaseException) -> EnvironmentProblem | None:
    """The EnvironmentProblem an OSError or a DuckDB error stands for; None when it is not
    one of the environment's failures (then it is the caller's to report)."""
    number: int | None = None
    where = ""
    if isinstance(error, OSError) and error.errno is not None:
        number = error.errno
        where = f" ({error.filename})" if error.filename else ""
    elif _is_duckdb_error(error):
        text = str(error)
        number = next((code for needle, code in _ENVIRONMENT_TEXTS if needle in text), None)
        where = f" ({text})"
    if number is None:
        return None
    known = _ENVIRONMENT_ERRNOS.get(number)
    if known is None:
        return None
    what, advice = known
    return EnvironmentProblem(f"Cannot write or read the workspace: {what}{where}. {advice}")


# Texts DuckDB uses when the bytes of its file are not what it wrote.
_DAMAGE_TEXTS = (
    "Could not read enough bytes",
    "Corrupt",
    "corrupt",
    "checksum",
    "not a valid DuckDB database file",
    "Failed to read",
    "block id",
)


def store_damage(error: BaseException, path: object) -> StoreDamaged | None:
    """The StoreDamaged a DuckDB error stands for, when it says the file is damaged."""
    if not _is_duckdb_error(error):
        return None
    text = str(error)
    if not any(needle in text for needle in _DAMAGE_TEXTS):
        return None
    return StoreDamaged(
        f"The store file {path} is damaged ({text}). Restore it from a copy (`ftod store "
        "backup` makes one); `ftod store check` shows which tables still read."
    )
