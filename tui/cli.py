"""The `ftod` command line. Heavy modules (textual, the checks) load inside commands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from core.runs.limits import MAX_SEQ_LEN_LIMIT, SEED_LIMIT
from core.safetext import escape_control
from tui.cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    P,
    R,
    _announce_wait_once,
    _repository,
    _version,
    _workspace,
    json_option,
    print_json,
    progress_display,
    reports_errors,
)

if TYPE_CHECKING:
    from core.scan import CheckOptions


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FTOD_WORKSPACE",
    help="Workspace folder (default: the nearest .ftod/ upward, as git finds .git).",
)
@click.version_option(_version(), "--version", prog_name="ftod")
@click.pass_context
def main(ctx: click.Context, workspace: Path | None) -> None:
    """ftod — Fine-Tune, or Don't.

    A terminal dashboard and CLI for the fine-tuning decision loop: data checks,
    leak-free splits and versioned datasets. Run `ftod` alone to open the dashboard.
    """
    ctx.ensure_object(dict)
    ctx.obj["workspace"] = workspace
    if ctx.invoked_subcommand is None:
        open_dashboard(ctx)


@reports_errors
def open_dashboard(ctx: click.Context) -> None:
    from tui.app import FtodApp

    FtodApp(_workspace(ctx), initial_screen="home").run()


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=".")
@reports_errors
def init(folder: Path) -> None:
    """Create a workspace (.ftod/ with ftod.duckdb) in FOLDER (default: here)."""
    from store.db import Store
    from store.workspace import init_workspace

    workspace, created = init_workspace(folder)
    Store.open(workspace)
    verb = "Created" if created else "Workspace already exists at"
    click.echo(f"{verb} {escape_control(str(workspace.root))}")


@main.command()
@click.option("--no-open", is_flag=True, help="Build the demo workspace and print its path only.")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to build the demo workspace (default: a temporary folder).",
)
@reports_errors
def demo(no_open: bool, folder: Path | None) -> None:
    """Build a demo workspace from sample_runs/ and open the dashboard on it."""
    from tui.demo import build_demo_workspace

    workspace = build_demo_workspace(folder, log=lambda text: click.echo(text, err=True))
    click.echo(escape_control(str(workspace.root.parent)))
    if not no_open:
        from tui.app import FtodApp

        FtodApp(workspace, initial_screen="home").run()


@main.group()
def data() -> None:
    """Datasets: add, check, list, show, export, split."""


def _volatile_terms(ctx: click.Context, flags: tuple[str, ...]) -> tuple[str, ...]:
    """`--volatile-term` flags plus the workspace's `[audit] volatile_terms`, when there is one."""
    from core.settings import load_settings
    from store.errors import InputError, WorkspaceError

    if any(not term.strip() for term in flags):
        raise InputError("--volatile-term must not be empty", field="volatile_term")
    try:
        root = _workspace(ctx).root
    except WorkspaceError:  # `data check` works on a file outside any workspace
        root = None
    return (*flags, *load_settings(root).strings("audit", "volatile_terms"))


def _check_options(
    max_seq_len: int | None,
    tokenizer: Path | None,
    threshold: float | None,
    against: tuple[Path, ...],
    volatile_terms: tuple[str, ...] = (),
) -> CheckOptions:
    from core.checks.minhash import DEFAULT_THRESHOLD
    from core.scan import CheckOptions
    from core.tokens import DEFAULT_MAX_SEQ_LEN

    return CheckOptions(
        max_seq_len=max_seq_len if max_seq_len is not None else DEFAULT_MAX_SEQ_LEN,
        tokenizer_dir=tokenizer,
        near_dup_threshold=threshold if threshold is not None else DEFAULT_THRESHOLD,
        against=against,
        volatile_terms=volatile_terms,
    )


def check_options(command: Callable[P, R]) -> Callable[P, R]:
    command = click.option(
        "--volatile-term",
        "volatile_terms",
        multiple=True,
        help="A plan, product or policy name of yours that goes stale (volatile_fact). Repeatable.",
    )(command)
    command = click.option(
        "--near-dup-threshold",
        "threshold",
        type=float,
        default=None,
        help="Jaccard similarity at which two rows count as near-duplicates.",
    )(command)
    command = click.option(
        "--tokenizer",
        type=click.Path(path_type=Path),
        default=None,
        help="Local Hugging Face tokenizer folder for exact token counts (with its chat template).",
    )(command)
    command = click.option(
        "--max-seq-len",
        type=click.IntRange(1, MAX_SEQ_LEN_LIMIT),
        default=None,
        help="Flag rows longer than this many tokens (default 2048).",
    )(command)
    return command


@data.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--against",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Another dataset file; rows of PATH found in it are reported as leakage. Repeatable.",
)
@check_options
@json_option
@click.pass_context
@reports_errors
def data_check(
    ctx: click.Context,
    path: Path,
    against: tuple[Path, ...],
    max_seq_len: int | None,
    tokenizer: Path | None,
    threshold: float | None,
    volatile_terms: tuple[str, ...],
    as_json: bool,
) -> None:
    """Check a chat dataset file for every known problem. Exit 1 when errors are found."""
    from core.safefiles import require_regular_file
    from core.scan import check_file
    from tui.report import print_check_report

    for input_path in (path, *against):
        require_regular_file(input_path, "dataset file")
    options = _check_options(
        max_seq_len, tokenizer, threshold, against, _volatile_terms(ctx, volatile_terms)
    )
    with progress_display(not as_json) as progress:
        report = check_file(path, options, progress=progress)
    if as_json:
        print_json(report.as_json())
    else:
        print_check_report(report)
    sys.exit(EXIT_FAILED if report.error_count else EXIT_OK)


@data.command("add")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--name", required=True, help="Dataset name; a new version is added when content changed."
)
@click.option("--strict", is_flag=True, help="Refuse the file if any check reports an error.")
@check_options
@json_option
@click.pass_context
@reports_errors
def data_add(
    ctx: click.Context,
    path: Path,
    name: str,
    strict: bool,
    max_seq_len: int | None,
    tokenizer: Path | None,
    threshold: float | None,
    volatile_terms: tuple[str, ...],
    as_json: bool,
) -> None:
    """Check PATH and store it as a new version of dataset NAME."""
    from core.datasets import add_dataset
    from core.safefiles import require_regular_file
    from store.datasets import DatasetRepository
    from store.db import Store

    require_regular_file(path, "dataset file")
    workspace = _workspace(ctx)
    repository = DatasetRepository(Store.open(workspace, on_wait=_announce_wait_once()))
    options = _check_options(
        max_seq_len, tokenizer, threshold, (), _volatile_terms(ctx, volatile_terms)
    )
    with progress_display(not as_json) as progress:
        outcome = add_dataset(
            workspace, repository, path, name, options, strict=strict, progress=progress
        )
    version = outcome.version
    if as_json:
        print_json({**version.as_json(), "created": outcome.created})
        return
    if not outcome.created:
        click.echo(
            f"No new version: {escape_control(str(path))} has the same content as {version.ref} "
            f"(sha256 {version.sha256[:12]})."
        )
        return
    click.echo(
        f"Added {version.ref}: {version.rows_total} rows ({version.rows_valid} valid), "
        f"{version.errors} errors, {version.warnings} warnings, sha256 {version.sha256[:12]}"
    )
    if version.errors or version.warnings:
        click.echo(f"See them with `ftod data show {version.ref}` or in the dashboard (`ftod`).")


@data.command("list")
@json_option
@click.pass_context
@reports_errors
def data_list(ctx: click.Context, as_json: bool) -> None:
    """List datasets with their latest version."""
    listings = _repository(ctx).list_datasets()
    if as_json:
        print_json([item.as_json() for item in listings])
        return
    from tui.report import print_dataset_list

    print_dataset_list(listings)


@data.command("show")
@click.argument("ref")
@click.option(
    "--findings", "finding_limit", type=int, default=20, help="How many findings to list."
)
@json_option
@click.pass_context
@reports_errors
def data_show(ctx: click.Context, ref: str, finding_limit: int, as_json: bool) -> None:
    """Show one dataset version (NAME or NAME@VERSION): summary, findings, splits."""
    repository = _repository(ctx)
    version = repository.version(ref)
    counts = repository.finding_counts(version.version_id)
    splits = repository.splits(version.version_id)
    if as_json:
        payload = version.as_json()
        payload["versions"] = [v.version for v in repository.versions(version.dataset)]
        payload["summary"] = version.summary
        payload["finding_counts"] = [
            {"check": c, "severity": s, "findings": n, "rows": r} for c, s, n, r in counts
        ]
        payload["findings"] = [
            f.as_json()
            for f in repository.findings_page(version.version_id, limit=max(finding_limit, 0))
        ]
        payload["splits"] = [split.as_json() for split in splits]
        print_json(payload)
        return
    from tui.report import print_version

    findings = repository.findings_page(version.version_id, limit=max(finding_limit, 0))
    print_version(version, counts, findings, splits)


@data.command("export")
@click.argument("ref")
@click.option("--split", "split_name", type=click.Choice(["train", "val", "test"]), default=None)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="Output JSONL file, or - for stdout.",
)
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@click.pass_context
@reports_errors
def data_export(
    ctx: click.Context, ref: str, split_name: str | None, output: Path, force: bool
) -> None:
    """Write the valid rows of NAME@VERSION (optionally one split) as chat JSONL."""
    from core.datasets import export_dataset
    from core.safefiles import output_target

    target = None if str(output) == "-" else output
    replacing = False
    if target is not None:
        # Checked before the store is read, so a wrong -o costs nothing.
        _real, replacing = output_target(target, overwrite=force)
    version, count = export_dataset(_repository(ctx), ref, target, split_name, overwrite=force)
    if target is not None:
        which = f" ({split_name} split)" if split_name else ""
        replaced = " (replaced the file that was there)" if replacing else ""
        click.echo(
            f"Wrote {count} rows of {version.ref}{which} to "
            f"{escape_control(str(target))}{replaced}",
            err=True,
        )


@data.command("split")
@click.argument("ref")
@click.option("--val", type=float, default=0.1, show_default=True, help="Validation fraction.")
@click.option("--test", type=float, default=0.1, show_default=True, help="Test fraction.")
@click.option("--group-by", default=None, help="metadata field whose rows must stay in one split.")
@click.option("--stratify", default=None, help="metadata field to balance across splits.")
@click.option("--seed", type=click.IntRange(0, SEED_LIMIT), default=0, show_default=True)
@json_option
@click.pass_context
@reports_errors
def data_split(
    ctx: click.Context,
    ref: str,
    val: float,
    test: float,
    group_by: str | None,
    stratify: str | None,
    seed: int,
    as_json: bool,
) -> None:
    """Split NAME[@VERSION] into train/val/test, deterministically from content, without leakage."""
    from core.datasets import split_dataset

    outcome = split_dataset(
        _repository(ctx), ref, val=val, test=test, seed=seed, group_by=group_by, stratify=stratify
    )
    if as_json:
        print_json(
            {
                "ref": outcome.version.ref,
                "split_id": outcome.split.split_id,
                **outcome.split.manifest,
                "findings": [f.as_json() for f in outcome.findings],
            }
        )
        return
    from tui.report import print_split

    print_split(outcome)


def _register_run_commands() -> None:
    # Defined in their own module to keep this one about data; registered here so
    # `ftod --help` lists them.
    from tui.cli_cost import cost
    from tui.cli_decide import decide_group
    from tui.cli_evals import compare, eval_group, evals_group, gate
    from tui.cli_generate import compare_run, eval_run, prompt_group
    from tui.cli_judge import judge_group
    from tui.cli_review import review
    from tui.cli_runs import runs, train
    from tui.cli_store import store_group

    main.add_command(train)
    main.add_command(runs)
    main.add_command(eval_group)
    main.add_command(evals_group)
    main.add_command(compare)
    main.add_command(gate)
    main.add_command(prompt_group)
    eval_group.add_command(eval_run)
    main.add_command(compare_run)
    main.add_command(review)
    main.add_command(judge_group)
    main.add_command(store_group)
    main.add_command(cost)
    main.add_command(decide_group)


_register_run_commands()

if __name__ == "__main__":
    main()
