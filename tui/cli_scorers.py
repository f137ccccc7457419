"""`--scorer-file`, shared by every command that takes `--scorer` or a gate spec."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from tui.cli_common import _workspace

scorer_file_option = click.option(
    "--scorer-file",
    "scorer_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help='A Python file whose @scorer("NAME") functions become custom:NAME (repeatable). '
    "It is code and runs with your permissions; name only files you trust.",
)


def load_scorers(ctx: click.Context, scorer_files: Sequence[Path]) -> None:
    """Register the custom scorers of the workspace settings' scorer_files and --scorer-file.

    Called on every such command, also without files, so that it sees exactly the scorers it
    was given (the registry is per process and would otherwise keep an earlier command's).
    """
    from core.evals.scorer_files import settings_scorer_files
    from core.evals.scorers import load_scorer_files

    configured = settings_scorer_files(_workspace(ctx).root)
    load_scorer_files([*configured, *scorer_files])
