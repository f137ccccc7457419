"""`ftod store check|backup`: read every table of the store back, and copy it consistently."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tui.cli_common import EXIT_FAILED, EXIT_OK, _workspace, json_option, print_json, reports_errors


@click.group("store")
def store_group() -> None:
    """The workspace's DuckDB file: check it for damage, back it up."""


@store_group.command("check")
@json_option
@click.pass_context
@reports_errors
def store_check(ctx: click.Context, as_json: bool) -> None:
    """Read every row of every table; exit 1 when the file is damaged."""
    from store.db import Store, check_store

    workspace = _workspace(ctx)
    # Not Store.open: migrating first would write to the file this command is checking.
    outcome = check_store(Store(workspace.database_path))
    if as_json:
        print_json(outcome.as_json())
    else:
        if outcome.open_error is not None:
            click.echo(f"{outcome.path}: cannot be opened: {outcome.open_error}")
        if outcome.size_error is not None:
            click.echo(f"{outcome.path}: DAMAGED: {outcome.size_error}")
        for table in outcome.tables:
            state = f"{table.rows} rows" if table.error is None else f"DAMAGED: {table.error}"
            click.echo(f"  {table.table:<20} {state}")
        if outcome.ok:
            click.echo(f"{outcome.path}: every table reads back whole")
        else:
            click.echo(
                f"{outcome.path} is damaged: restore it from a copy (`ftod store backup` "
                "makes one while it still reads)",
                err=True,
            )
    sys.exit(EXIT_OK if outcome.ok else EXIT_FAILED)


@store_group.command("backup")
@click.argument("destination", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace DESTINATION if it exists.")
@json_option
@click.pass_context
@reports_errors
def store_backup(ctx: click.Context, destination: Path, force: bool, as_json: bool) -> None:
    """Write a consistent copy of the store to DESTINATION (a new DuckDB file), checked
    before it is kept; works while other ftod processes use the store."""
    from core.safefiles import output_target
    from store.db import Store, backup_store

    real, replacing = output_target(destination, overwrite=force, option="DESTINATION")
    workspace = _workspace(ctx)
    outcome = backup_store(Store.open(workspace), real)
    rows = sum(table.rows or 0 for table in outcome.tables)
    if as_json:
        print_json({**outcome.as_json(), "replaced": replacing})
        return
    replaced = " (replaced the file that was there)" if replacing else ""
    click.echo(f"Wrote {destination}: {len(outcome.tables)} tables, {rows} rows{replaced}")
