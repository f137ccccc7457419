"""`ftod train` and `ftod runs …`: launching, following and inspecting training runs."""

from __future__ import annotations

import dataclasses
import math
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from core.safetext import escape_control
from tui.cli_common import (
    EXIT_FAILED,
    _repository,
    _workspace,
    json_option,
    print_json,
    reports_errors,
    repository,
)

if TYPE_CHECKING:
    from core.runs.monitor import RunTail, RunView
    from core.runs.rundir import RunPaths
    from store.runs import RunRepository

FOLLOW_POLL_SECONDS = 0.5


def _run_repository(ctx: click.Context) -> RunRepository:
    from store.runs import RunRepository

    return repository(ctx, RunRepository)


def _ingest_report(ctx: click.Context) -> tuple[RunRepository, Any]:
    from core.runs.ingest import ingest_runs

    runs = _run_repository(ctx)
    return runs, ingest_runs(_workspace(ctx), runs)


def _warn_skipped(report: Any, but: str | None = None) -> None:
    # stderr, so `--json` output stays one JSON document.
    for skipped in report.skipped:
        if skipped.run_id != but:
            click.echo(f"ftod: warning: {skipped.warning()}", err=True)


def _ingested(ctx: click.Context, showing: str | None = None) -> RunRepository:
    """The runs index, brought up to date; a run directory it skipped is named on stderr,
    and asking for that run (`showing`) says why it is not in the index."""
    runs, _current = _ingested_if_writable(ctx, showing=showing, read_only=False)
    return runs


def _ingested_if_writable(
    ctx: click.Context, showing: str | None = None, *, read_only: bool = True
) -> tuple[RunRepository, bool]:
    """(the run index, whether it is up to date with the run folders). A command that only
    reads (`read_only`) still shows what the store has when the workspace cannot be written
    (a read-only or full disk), with a note, rather than failing."""
    from core.runs.ingest import ingest_runs
    from store.errors import EnvironmentProblem, InputError

    runs = _run_repository(ctx)
    try:
        report = ingest_runs(_workspace(ctx), runs)
    except EnvironmentProblem as problem:
        if not read_only:
            raise
        click.echo(
            f"note: showing the runs as last stored; new progress was not read in. "
            f"{problem.message}",
            err=True,
        )
        return runs, False
    _warn_skipped(report, but=showing)
    for skipped in report.skipped:
        if skipped.run_id == showing:
            raise InputError(skipped.warning(), title="Run not indexed")
    return runs, True


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}f}"
    return str(value)


def _summary_json(paths: RunPaths) -> dict[str, Any]:
    """What `runs show --json` promises, read straight from the run directory."""
    from core.runs.monitor import read_run

    view = read_run(paths)
    return view.as_json()


@click.command("train")
@click.argument("config_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--detach", is_flag=True, help="Print the run id and return; training goes on.")
@click.option(
    "--allow-download",
    is_flag=True,
    help="Let the trainer download the base model from the hub if it is not cached.",
)
@click.option("--name", default=None, help="Run name (default: the config's name).")
@json_option
@click.pass_context
@reports_errors
def train(
    ctx: click.Context,
    config_path: Path,
    detach: bool,
    allow_download: bool,
    name: str | None,
    as_json: bool,
) -> None:
    """Launch a LoRA/QLoRA run from CONFIG_PATH (YAML) as a detached process.

    The run id is printed first; then progress is followed until the run ends (Ctrl-C
    stops following, not training) unless --detach.
    """
    from core.runs.config import load_run_config
    from core.runs.launch import prepare_run, start_trainer
    from core.runs.names import check_run_name
    from core.safefiles import MAX_WHOLE_FILE_BYTES, require_regular_file

    require_regular_file(config_path, "config", max_bytes=MAX_WHOLE_FILE_BYTES)
    config = load_run_config(config_path)
    if name is not None:
        config = dataclasses.replace(config, name=check_run_name(name))
    workspace = _workspace(ctx)
    prepared = prepare_run(
        workspace,
        _repository(ctx),
        config,
        allow_download=allow_download,
        config_path=config_path,
    )
    pid = start_trainer(prepared.paths)
    _announce_started(prepared.paths, pid, as_json)
    if not (detach or as_json):
        sys.exit(_follow(prepared.paths))


def _announce_started(paths: RunPaths, pid: int, as_json: bool) -> None:
    if as_json:
        print_json({"id": paths.run_id, "run_dir": str(paths.root), "pid": pid})
        return
    click.echo(paths.run_id)
    click.echo(f"trainer pid {pid}; log {escape_control(str(paths.log))}", err=True)


def _follow(paths: RunPaths) -> int:
    """Show progress until the run ends; exit status 0 only if it succeeded."""
    from core.runs.monitor import RunTail

    tail = RunTail(paths)
    interactive = sys.stderr.isatty()
    try:
        if interactive:
            _follow_with_bar(tail)
        else:
            _follow_plain(tail)
    except KeyboardInterrupt:
        click.echo(
            f"\nStopped following; the run goes on. `ftod runs show {paths.run_id}` or "
            f"`ftod runs cancel {paths.run_id}`.",
            err=True,
        )
        return 0
    view = tail.view
    line = f"{view.run_id}: {view.state}"
    if view.reason:
        line += f" ({view.reason})"
    if view.message:
        line += f" — {escape_control(view.message)}"
    click.echo(line, err=True)
    return 0 if view.state == "succeeded" else EXIT_FAILED


def _follow_with_bar(tail: RunTail) -> None:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("starting", total=None, metrics="")
        while True:
            view = tail.poll()
            bar.update(
                task,
                description=view.state,
                completed=view.step or 0,
                total=view.total_steps,
                metrics=_metrics_text(view),
            )
            if view.is_final:
                return
            time.sleep(FOLLOW_POLL_SECONDS)


def _follow_plain(tail: RunTail) -> None:
    last_print = 0.0
    last_step = -1
    while True:
        view = tail.poll()
        moment = time.monotonic()
        if view.is_final or (view.step != last_step and moment - last_print >= 5):
            total = f"/{view.total_steps}" if view.total_steps else ""
            click.echo(f"{view.state} step {view.step}{total} {_metrics_text(view)}", err=True)
            last_print, last_step = moment, view.step
        if view.is_final:
            return
        time.sleep(FOLLOW_POLL_SECONDS)


def _metrics_text(view: RunView) -> str:
    parts = []
    if view.loss is not None:
        parts.append(f"loss {_number(view.loss)}")
    if view.val_loss is not None:
        parts.append(f"val {_number(view.val_loss)}")
    if view.tokens_per_s is not None:
        parts.append(f"{view.tokens_per_s:,.0f} tok/s")
    return "  ".join(parts)


@click.group("runs")
def runs() -> None:
    """List, inspect, cancel, resume and import training runs."""


@runs.command("list")
@json_option
@click.pass_context
@reports_errors
def runs_list(ctx: click.Context, as_json: bool) -> None:
    """Every run of this workspace, newest first."""
    repository, _current = _ingested_if_writable(ctx)
    records = repository.list_runs()
    if as_json:
        print_json([record.as_json() for record in records])
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold")
    for column in ("id", "name", "state", "step", "loss", "best val", "tok/s", "source"):
        table.add_column(column)
    for record in records:
        state = record.state + (f" ({record.reason})" if record.reason else "")
        step = f"{record.step or 0}" + (f"/{record.total_steps}" if record.total_steps else "")
        # Text cells, not markup: a name like "[red]x" is shown as typed.
        table.add_row(
            Text(record.run_id),
            Text(escape_control(record.name)),
            Text(state),
            step,
            _number(record.loss),
            _number(record.best_val_loss),
            _number(record.tokens_per_s, 0),
            Text(escape_control(record.source)),
        )
    if not records:
        click.echo("No runs yet. Launch one with `ftod train CONFIG.yaml`.")
        return
    Console(highlight=False).print(table)


@runs.command("show")
@click.argument("run_ref")
@json_option
@click.pass_context
@reports_errors
def runs_show(ctx: click.Context, run_ref: str, as_json: bool) -> None:
    """One run: state, progress, latest metrics, config and lineage."""
    from core.runs.launch import find_run
    from core.runs.rundir import read_json
    from store.errors import NotFoundError

    paths = find_run(_workspace(ctx), run_ref)
    repository, current = _ingested_if_writable(ctx, showing=paths.run_id)
    payload = _summary_json(paths)
    try:
        record = repository.run(paths.run_id)
    except NotFoundError:
        if current:
            raise
        # Not in the store yet, and the store cannot be written: the run folder says as much.
        run_json = read_json(paths.run_json) or {}
        payload["config"] = run_json.get("config") or {}
        payload["lineage"] = run_json.get("lineage") or {}
        payload["metrics_logged"] = {}
    else:
        payload["config"] = record.config
        payload["lineage"] = record.lineage
        payload["metrics_logged"] = repository.metric_count(paths.run_id)
    if as_json:
        print_json(payload)
        return
    from rich.console import Console
    from rich.markup import escape

    def shown(value: Any) -> str:
        # Control characters escaped for the terminal, brackets for rich's markup.
        return escape(escape_control(str(value)))

    console = Console(highlight=False)
    state = payload["state"] + (f" ({payload['reason']})" if payload["reason"] else "")
    console.print(f"[bold]{shown(payload['id'])}[/]  {shown(payload['name'])}  [bold]{state}[/]")
    if payload.get("message"):
        console.print(f"  {shown(payload['message'])}")
    total = f"/{payload['total_steps']}" if payload["total_steps"] else ""
    console.print(
        f"  step {payload['step']}{total}  loss {_number(payload['loss'])}  "
        f"val loss {_number(payload['val_loss'])}  best val {_number(payload['best_val_loss'])}"
        f"  tok/s {_number(payload['tokens_per_s'], 0)}"
    )
    console.print(f"  run dir {shown(payload['run_dir'])}  pid {payload['pid'] or '—'}")
    lineage = payload["lineage"]
    for key in sorted(lineage):
        if isinstance(lineage[key], dict | list):
            continue
        console.print(f"  [dim]{shown(key)}[/] {shown(lineage[key])}")


@runs.command("cancel")
@click.argument("run_ref")
@click.option(
    "--grace",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to wait for the checkpoint after SIGTERM before SIGKILL.",
)
@json_option
@click.pass_context
@reports_errors
def runs_cancel(ctx: click.Context, run_ref: str, grace: float, as_json: bool) -> None:
    """Stop a run: it checkpoints and ends `cancelled` (killed after --grace seconds)."""
    from core.runs.launch import cancel_run, find_run

    paths = find_run(_workspace(ctx), run_ref)
    status = cancel_run(paths, grace_seconds=grace)
    _ingested(ctx)
    if as_json:
        print_json(_summary_json(paths))
        return
    click.echo(f"{paths.run_id}: {status.state} — {escape_control(str(status.message))}")


@runs.command("resume")
@click.argument("run_ref")
@click.option("--detach", is_flag=True, help="Print the run id and return.")
@json_option
@click.pass_context
@reports_errors
def runs_resume(ctx: click.Context, run_ref: str, detach: bool, as_json: bool) -> None:
    """Continue an interrupted, cancelled or failed run from its last checkpoint."""
    from core.runs.launch import find_run, resume_run

    paths = find_run(_workspace(ctx), run_ref)
    pid = resume_run(paths)
    _announce_started(paths, pid, as_json)
    if not (detach or as_json):
        sys.exit(_follow(paths))


@runs.command("logs")
@click.argument("run_ref")
@click.option("-n", "--lines", type=int, default=50, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the run ends.")
@json_option
@click.pass_context
@reports_errors
def runs_logs(ctx: click.Context, run_ref: str, lines: int, follow: bool, as_json: bool) -> None:
    """The trainer's stdout/stderr (trainer.log)."""
    from core.runs.launch import find_run
    from core.runs.monitor import log_tail
    from core.runs.rundir import observed_status

    paths = find_run(_workspace(ctx), run_ref)
    text, offset = log_tail(paths.log, lines)
    if as_json:
        print_json({"id": paths.run_id, "log": str(paths.log), "lines": text})
        return
    for line in text:
        click.echo(escape_control(line, keep_lines=True))
    while follow:
        status = observed_status(paths)
        try:
            with paths.log.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            offset += len(chunk)
            sys.stdout.write(escape_control(chunk.decode("utf-8", "replace"), keep_lines=True))
            sys.stdout.flush()
        if status is None or status.is_final:
            return
        time.sleep(FOLLOW_POLL_SECONDS)


@runs.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", default=None, help="Run name (default: from the file name).")
@json_option
@click.pass_context
@reports_errors
def runs_import(ctx: click.Context, path: Path, name: str | None, as_json: bool) -> None:
    """Import a training log written by another tool (HF trainer_state.json, LLaMA-Factory
    trainer_log.jsonl, OpenAI results CSV, Trainer stdout), to compare with native runs.

    PATH may also be an output folder: its trainer_log.jsonl or trainer_state.json, else the
    newest checkpoint-N/trainer_state.json, is imported."""
    from core.runs.imports import create_imported_run, find_training_log
    from core.runs.names import check_run_name
    from core.safefiles import require_regular_file
    from store.errors import InputError

    if name is not None:
        check_run_name(name)
    if not path.is_dir():
        require_regular_file(path, "training log")
    if path.is_dir():
        path = find_training_log(path)
    elif not path.is_file():
        raise InputError(f"{path}: no such file")
    workspace = _workspace(ctx)
    paths = create_imported_run(workspace.runs_dir, path, name=name)
    _, report = _ingest_report(ctx)
    _warn_skipped(report, but=paths.run_id)
    for skipped in report.skipped:
        if skipped.run_id == paths.run_id:
            # The checks before the import should have refused it; never leave a run
            # behind that the index cannot hold (a retry would add another).
            shutil.rmtree(paths.root, ignore_errors=True)
            raise InputError(f"{path} cannot be imported: {skipped.reason}")
    if as_json:
        print_json(_summary_json(paths))
        return
    click.echo(paths.run_id)
    view = _summary_json(paths)
    click.echo(
        f"imported {escape_control(path.name)}: {view['state']}, last step {view['step']}, "
        f"loss {_number(view['loss'])}, val loss {_number(view['val_loss'])}",
        err=True,
    )


@runs.command("watch")
@click.argument("run_ref", required=False)
@click.pass_context
@reports_errors
def runs_watch(ctx: click.Context, run_ref: str | None) -> None:
    """Open the dashboard on the runs (or straight on RUN), e.g. `ssh -t host ftod runs watch`.

    Closing it never stops training; opening it again shows the whole history.
    """
    from core.runs.launch import find_run
    from tui.app import FtodApp

    workspace = _workspace(ctx)
    open_run = find_run(workspace, run_ref).run_id if run_ref else None
    FtodApp(workspace, initial_screen="runs", open_run=open_run).run()
