"""Errors that carry a title and a message a person can act on.

The CLI prints them without a traceback and exits with `exit_code`; the TUI shows them
in a modal. Defined in the store layer because every layer above raises them.
"""

from __future__ import annotations


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
