"""What every `ftod` command shares: error reporting, exit codes, the workspace, --json."""

from __future__ import annotations

import json
import math
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

from core.safetext import escape_control
from store.errors import FtodError, environment_problem

if TYPE_CHECKING:
    from store.datasets import DatasetRepository
    from store.db import Store
    from store.workspace import Workspace

P = ParamSpec("P")
R = TypeVar("R")
RepositoryT = TypeVar("RepositoryT")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERNAL = 70


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ftod")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn FtodError into a clear message and its exit code; never a traceback for input."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("as_json"))
        try:
            return command(*args, **kwargs)
        except FtodError as error:
            _fail(error.title, error.message, error.exit_code, as_json)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except BrokenPipeError:
            # The reader went away (`ftod … | head`): not a bug. click's main quiets stdout and
            # exits 1, as rich does for its own output.
            raise
        except MemoryError:
            _fail("Out of memory", "ftod ran out of memory on this input.", EXIT_USAGE, as_json)
        except Exception as error:  # noqa: BLE001 - last resort: a bug, reported as one
            # A full disk or a read-only workspace is the machine's problem, not a bug.
            problem = environment_problem(error)
            if problem is not None:
                _fail(problem.title, problem.message, problem.exit_code, as_json)
            if os.environ.get("FTOD_DEBUG"):
                traceback.print_exc()
            _fail(
                "Internal error",
                f"{type(error).__name__}: {error}. This is a bug in ftod; "
                "set FTOD_DEBUG=1 for the traceback.",
                EXIT_INTERNAL,
                as_json,
            )
        raise AssertionError("unreachable")

    return wrapper


def _fail(title: str, message: str, code: int, as_json: bool) -> None:
    if as_json:
        print_json({"error": {"title": title, "message": message, "exit_code": code}})
    click.secho(f"ftod: {title}: {escape_control(message)}", err=True, fg="red")
    sys.exit(code)


@contextmanager
def progress_display(enabled: bool) -> Iterator[Callable[[str, int, int | None], None] | None]:
    """A rich progress bar on stderr for long work; silent when stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    tasks: dict[str, TaskID] = {}
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<20}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:

        def update(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                for other in tasks.values():
                    bar.update(other, completed=bar.tasks[other].total or 0)
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def _workspace(ctx: click.Context) -> Workspace:
    from store.workspace import find_workspace

    return find_workspace(ctx.obj.get("workspace"))


def open_store(ctx: click.Context) -> Store:
    """The workspace's store, announcing once on stderr when another process holds it."""
    from store.db import Store

    return Store.open(_workspace(ctx), on_wait=_announce_wait_once())


def repository(ctx: click.Context, kind: Callable[[Store], RepositoryT]) -> RepositoryT:
    """A repository of the workspace's store, typed as the class asked for:
    `repository(ctx, RunRepository)` is a RunRepository to mypy too."""
    return kind(open_store(ctx))


def _repository(ctx: click.Context) -> DatasetRepository:
    from store.datasets import DatasetRepository

    return repository(ctx, DatasetRepository)


def strict_json(value: Any) -> Any:
    """`value` with NaN and infinities as None: JSON has no token for them, and a reader's
    strict parser would refuse the whole document. The record's state says why a number is
    missing (a run failed with reason nan_loss)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    return value


# JSON leaves C1 controls (U+0080-U+009F) raw under ensure_ascii=False; a terminal reads
# U+009B as CSI. They only occur inside strings, where a \u escape means the same text.
_C1_CONTROL = re.compile("[\x7f-\x9f]")


def print_json(payload: Any) -> None:
    """The one way a command prints --json: strict JSON (no NaN), safe on a terminal."""
    text = json.dumps(strict_json(payload), ensure_ascii=False, allow_nan=False, default=str)
    click.echo(_C1_CONTROL.sub(lambda found: f"\\u{ord(found.group()):04x}", text))


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def _announce_wait_once() -> Callable[[float], None]:
    said = False

    def announce(remaining: float) -> None:
        nonlocal said
        if not said:
            click.echo(
                f"Store busy (another ftod process); waiting up to {remaining:.0f} s…", err=True
            )
            said = True

    return announce


class RunByDefaultGroup(click.Group):
    """A group where options without a subcommand mean its `run` subcommand:
    `ftod eval --model …` is `ftod eval run --model …`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0].startswith("-") and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)
