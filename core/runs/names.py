"""Run names: checked where a person types one, made safe where a file supplies one."""

from __future__ import annotations

from core.safetext import escape_control, has_control
from store.errors import InputError

MAX_RUN_NAME = 100


def check_run_name(name: str) -> str:
    """The name if it is printable text on one line; InputError (exit 2) otherwise.

    Like eval labels: any printable characters, so "support lora v2" stays a valid name, but
    no control characters, which a terminal would obey when the run is listed.
    """
    if has_control(name):
        raise InputError(
            f"run name '{escape_control(name)}': use printable characters on one line "
            "(no control characters or escape sequences)"
        )
    if len(name) > MAX_RUN_NAME:
        raise InputError(f"run name {name[:20]!r}…: at most {MAX_RUN_NAME} characters")
    return name


def sanitize_run_name(name: str) -> str:
    """A name taken from a file or folder of another tool's output: never refused (the log is
    worth importing), its control characters written out as escapes instead."""
    return escape_control(name[:MAX_RUN_NAME])
