"""`ftod eval import`, `ftod evals list|show`, `ftod compare` and `ftod gate`: bringing model
outputs in, comparing two evals per slice, and the release gate."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from core.safetext import escape_control

if TYPE_CHECKING:
    from rich.console import Console

from tui.cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    RunByDefaultGroup,
    _repository,
    json_option,
    print_json,
    reports_errors,
    repository,
)
from tui.cli_scorers import load_scorers, scorer_file_option


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return str(value) if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def _p_value(value: float | None) -> str:
    # Small p-values matter by their order of magnitude, not their fourth decimal.
    if value is None:
        return "—"
    return f"{value:.4f}" if value >= 0.001 else f"{value:.1e}"


def _shown(text: object) -> str:
    """User text inside rich markup: control characters and brackets escaped."""
    from rich.markup import escape

    return escape(escape_control(str(text)))


def _console() -> Console:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        # Piped or captured output has no width to fit; rich's 80 columns would wrap the
        # comparison table into an unreadable (and ungreppable) shape.
        console.width = max(console.width, 132)
    return console


@click.group("eval", cls=RunByDefaultGroup)
def eval_group() -> None:
    """Produce an eval: `ftod eval run` (or `ftod eval --model …`) generates outputs with a
    local model; `ftod eval import` brings outputs made elsewhere (see also `ftod evals`,
    `compare`, `gate`)."""


@eval_group.command("import")
@click.option(
    "--data",
    "data_ref",
    required=True,
    help="The eval set: NAME@VERSION, or NAME@VERSION:SPLIT (train, val or test).",
)
@click.option(
    "--outputs",
    "outputs_path",
    required=True,
    type=click.Path(path_type=Path),
    help='JSONL, one {"line": N, "output": "..."} or {"id": ..., "output": "..."} per line.',
)
@click.option("--label", required=True, help="A unique name for this eval.")
@click.option(
    "--scorer",
    "scorer_specs",
    multiple=True,
    help="A scorer spec, e.g. exact, normalised, contains:refund, json_valid, custom:NAME. "
    "Repeatable; default exact.",
)
@scorer_file_option
@click.option("--model", default=None, help="The model that wrote the outputs (recorded).")
@json_option
@click.pass_context
@reports_errors
def eval_import(
    ctx: click.Context,
    data_ref: str,
    outputs_path: Path,
    label: str,
    scorer_specs: tuple[str, ...],
    scorer_files: tuple[Path, ...],
    model: str | None,
    as_json: bool,
) -> None:
    """Import outputs produced elsewhere (vLLM, an API, another harness) and score them.

    Nothing is stored unless every line of the outputs file is usable.
    """
    from core.evals.service import import_eval
    from core.safefiles import require_regular_file
    from store.evals import EvalRepository

    load_scorers(ctx, scorer_files)

    require_regular_file(outputs_path, "--outputs")
    outcome = import_eval(
        _repository(ctx),
        repository(ctx, EvalRepository),
        data_ref,
        outputs_path,
        label,
        list(scorer_specs) or None,
        model=model,
    )
    record = outcome.record
    if as_json:
        print_json(outcome.as_json())
        return
    missing = f" ({outcome.without_output} without output)" if outcome.without_output else ""
    click.echo(
        f"Imported eval {record.eval_id} {record.label!r} on {record.data_ref}: "
        f"{record.rows} outputs for {outcome.examples} examples{missing}"
    )
    for summary in outcome.summaries:
        skipped = f", {summary.skipped} not scored" if summary.skipped else ""
        click.echo(
            f"  {summary.scorer}: mean {_number(summary.mean)} over {summary.scored}{skipped}"
        )
    for note in record.notes:
        click.echo(f"note: {escape_control(note)}", err=True)


@click.group("evals")
def evals_group() -> None:
    """List and inspect evals."""


@evals_group.command("list")
@json_option
@click.pass_context
@reports_errors
def evals_list(ctx: click.Context, as_json: bool) -> None:
    """Every eval of this workspace, oldest first."""
    from store.evals import EvalRepository

    records = repository(ctx, EvalRepository).list_evals()
    if as_json:
        print_json([record.as_json() for record in records])
        return
    if not records:
        click.echo("No evals yet. Import outputs with `ftod eval import`.")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("id", "label", "data", "source", "outputs", "scorers", "created"):
        table.add_column(column)
    for record in records:
        table.add_row(
            str(record.eval_id),
            record.label,
            record.data_ref,
            record.source,
            str(record.rows),
            ", ".join(record.scorer_names),
            record.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    _console().print(table)


@evals_group.command("show")
@click.argument("ref")
@json_option
@click.pass_context
@reports_errors
def evals_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """One eval (by id or label): scorers and their means, slices, gate results."""
    from core.evals.judge import summarize
    from core.evals.service import describe_eval
    from store.evals import EvalRepository
    from store.judges import JudgeRepository

    evals = repository(ctx, EvalRepository)
    details = describe_eval(evals, ref)
    judges = JudgeRepository(evals.store)
    judged = []
    for run in judges.runs_of_candidate(details.record.eval_id):
        overall = summarize(judges.verdicts(run.judge_id), {}).overall
        baseline = evals.eval_by_id(run.baseline_eval_id).label
        judged.append((run, baseline, overall))
    if as_json:
        payload = details.as_json()
        payload["judge_runs"] = [
            {
                "kind": "llm_judge",
                **run.as_json(),
                "baseline": baseline,
                "overall": overall.as_json(),
            }
            for run, baseline, overall in judged
        ]
        print_json(payload)
        return
    record = details.record
    console = _console()
    console.print(f"[bold]{_shown(record.label)}[/] (eval {record.eval_id})  on {record.data_ref}")
    console.print(
        f"  {record.rows} outputs, source {record.source}"
        + (f", model {_shown(record.model)}" if record.model else "")
    )
    if record.outputs_path:
        sha = (record.outputs_sha256 or "")[:12]
        console.print(f"  outputs {_shown(record.outputs_path)} (sha256 {sha})")
    for summary in details.summaries:
        skipped = f", {summary.skipped} not scored" if summary.skipped else ""
        console.print(
            f"  [bold]{summary.scorer}[/]: mean {_number(summary.mean)} over "
            f"{summary.scored}{skipped}"
        )
    if details.slices:
        listed = ", ".join(
            f"{_shown(name) if name else '(no slice)'} {count}" for name, count in details.slices
        )
        console.print(f"  slices: {listed}")
    for note in record.notes:
        console.print(f"  [dim]note: {_shown(note)}[/]")
    for result in details.gate_results:
        mark = "PASS" if result.passed else "FAIL"
        console.print(
            f"  gate {result.gate_id}: {mark} against {result.baseline_label} "
            f"(spec {result.spec_hash[:12]}, {result.created_at:%Y-%m-%d %H:%M})"
        )
    for run, baseline, overall in judged:
        console.print(
            f"  [magenta]LLM judge {run.judge_id}[/] ({run.judge_model}) against {baseline}: "
            f"candidate {overall.candidate_wins}, baseline {overall.baseline_wins}, tie "
            f"{overall.ties}, inconsistent {overall.inconsistent}; win rate "
            f"{_number(overall.win_rate, 3)} [dim](judge scores, not human verdicts)[/]",
            markup=True,
            soft_wrap=True,
        )


@click.command("compare")
@click.argument("eval_a")
@click.argument("eval_b")
@click.option(
    "--scorer",
    default=None,
    help="Scorer name or spec (default: exact when both evals have it, else a common one).",
)
@scorer_file_option
@json_option
@click.pass_context
@reports_errors
def compare(
    ctx: click.Context,
    eval_a: str,
    eval_b: str,
    scorer: str | None,
    scorer_files: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Compare EVAL_B (candidate) against EVAL_A (baseline), per slice and overall.

    delta is B − A on the examples both scored; ci is its 95% paired bootstrap interval; p is
    exact McNemar for pass/fail scorers (a paired permutation test for continuous ones), and
    p_holm adjusts the slices' p-values together.
    """
    from core.evals.service import compare_evals
    from store.evals import EvalRepository

    load_scorers(ctx, scorer_files)
    outcome = compare_evals(repository(ctx, EvalRepository), eval_a, eval_b, scorer)
    comparison = outcome.comparison
    if as_json:
        print_json(comparison.as_json())
        return
    from rich.table import Table

    console = _console()
    console.print(
        f"A = [bold]{outcome.baseline.label}[/]  B = [bold]{outcome.candidate.label}[/]  "
        f"on {outcome.baseline.data_ref}  scorer [bold]{comparison.scorer}[/] "
        f"({comparison.kind.replace('_', '/')})"
    )
    table = Table(box=None, header_style="bold")
    for column in ("slice", "n", "a", "b", "delta", "95% CI", "p", "p_holm", "improv.", "regr."):
        table.add_column(column, justify="left" if column == "slice" else "right")
    for stats in (*comparison.slices, comparison.overall):
        table.add_row(
            stats.slice,
            str(stats.n),
            _number(stats.mean_a),
            _number(stats.mean_b),
            f"{stats.delta:+.4f}",
            f"[{stats.ci[0]:+.4f}, {stats.ci[1]:+.4f}]",
            _p_value(stats.p),
            _p_value(stats.p_holm),
            str(stats.improvements),
            str(stats.regressions),
            style="bold" if stats is comparison.overall else None,
        )
    console.print(table)
    warnings = [w for stats in (*comparison.slices, comparison.overall) for w in stats.warnings]
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}")


@click.command("gate")
@click.option(
    "--spec",
    "spec_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The gate spec (YAML): rules per slice and scorer.",
)
@click.option("--baseline", "baseline_ref", required=True, help="The baseline eval (id or label).")
@click.option(
    "--candidate", "candidate_ref", required=True, help="The candidate eval (id or label)."
)
@scorer_file_option
@json_option
@click.pass_context
@reports_errors
def gate(
    ctx: click.Context,
    spec_path: Path,
    baseline_ref: str,
    candidate_ref: str,
    scorer_files: tuple[Path, ...],
    as_json: bool,
) -> None:
    """PASS or FAIL the candidate against the baseline under a gate spec; exit 0 / 1.

    The verdict and the spec's hash are stored with the candidate (`ftod evals show`).
    """
    from core.evals.service import run_gate
    from core.safefiles import MAX_WHOLE_FILE_BYTES, require_regular_file
    from store.evals import EvalRepository

    load_scorers(ctx, scorer_files)
    require_regular_file(spec_path, "--spec", max_bytes=MAX_WHOLE_FILE_BYTES)
    outcome = run_gate(repository(ctx, EvalRepository), spec_path, baseline_ref, candidate_ref)
    verdict = outcome.verdict
    if as_json:
        print_json(outcome.as_json())
    else:
        click.echo(verdict.as_text())
        click.echo(
            f"{outcome.candidate.label} against {outcome.baseline.label}; spec "
            f"{verdict.spec_hash[:12]}; stored as gate result {outcome.gate_id}",
            err=True,
        )
    sys.exit(EXIT_OK if verdict.passed else EXIT_FAILED)
