"""`ftod judge run|show`: a local LLM judges baseline against candidate, position-swapped, and
its agreement with the human reviewers of the same pair. Judge results are always printed as
the judge's, never as a scorer's or a reviewer's."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tui.cli_common import (
    RunByDefaultGroup,
    _workspace,
    json_option,
    open_store,
    print_json,
    progress_display,
    reports_errors,
)

if TYPE_CHECKING:
    from store.evals import EvalRepository
    from store.judges import JudgeRepository
    from store.reviews import ReviewRepository


def _repositories(
    ctx: click.Context,
) -> tuple[EvalRepository, JudgeRepository, ReviewRepository]:
    from store.evals import EvalRepository
    from store.judges import JudgeRepository
    from store.reviews import ReviewRepository

    store = open_store(ctx)
    return EvalRepository(store), JudgeRepository(store), ReviewRepository(store)


def _rate(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.3f}"


def _print_summary(summary: Any, judge_model: str) -> None:
    click.echo(f"LLM judge {judge_model} (judge scores, not human verdicts; both orders asked)")
    click.echo(
        f"{'slice':<20} {'n':>5} {'cand':>5} {'base':>5} {'tie':>5} {'incons':>6} "
        f"{'win rate':>9}  {'95% CI':<15} consistent"
    )
    for entry in (*summary.slices, summary.overall):
        ci = f"[{_rate(entry.ci[0])}, {_rate(entry.ci[1])}]"
        click.echo(
            f"{entry.slice[:20]:<20} {entry.n:>5} {entry.candidate_wins:>5} "
            f"{entry.baseline_wins:>5} {entry.ties:>5} {entry.inconsistent:>6} "
            f"{_rate(entry.win_rate):>9}  {ci:<15} {entry.consistency:.0%}"
        )
    if summary.first_position_picks or summary.second_position_picks:
        click.echo(
            f"position bias: of the inconsistent verdicts, {summary.first_position_picks} chose "
            f"answer A both times, {summary.second_position_picks} answer B both times"
        )


def _print_agreement(agreement: Any) -> None:
    if not agreement:
        click.echo("judge vs humans: no reviewer has judged these examples yet (ftod review)")
        return
    for entry in agreement:
        kappa = "—" if entry.kappa is None else f"{entry.kappa:.2f}"
        click.echo(
            f"judge vs {entry.reviewer}: agree {entry.agreed}/{entry.common} "
            f"({entry.rate:.0%}), κ {kappa}"
        )


@click.group("judge", cls=RunByDefaultGroup)
def judge_group() -> None:
    """LLM-as-judge: a local model compares baseline and candidate outputs pairwise, asked in
    both orders; shown as judge scores, with its agreement with human reviewers."""


@judge_group.command("run")
@click.option("--baseline", required=True, help="The baseline eval (id or label).")
@click.option("--candidate", required=True, help="The candidate eval (id or label).")
@click.option("--model", required=True, help="The judge model: a folder or a cached hub id.")
@click.option(
    "--template",
    "template_path",
    default=None,
    type=click.Path(path_type=Path),
    help="A prompt text with {response_a} {response_b} (and {conversation} {reference}).",
)
@click.option("--batch-size", default=8, show_default=True, type=int)
@click.option(
    "--max-field-chars",
    default=4000,
    show_default=True,
    type=int,
    help="Clip the conversation, reference and each answer to this many characters.",
)
@click.option("--resume", is_flag=True, help="Continue a crashed judge run from its checkpoint.")
@json_option
@click.pass_context
@reports_errors
def judge_run(
    ctx: click.Context,
    baseline: str,
    candidate: str,
    model: str,
    template_path: Path | None,
    batch_size: int,
    max_field_chars: int,
    resume: bool,
    as_json: bool,
) -> None:
    """Judge every example both evals answered, twice (answers swapped), and store the run.

    A verdict stands when both orders agree, else it is `inconsistent` (counted as a tie).
    Readings are checkpointed under .ftod/evals/ as they finish; after a crash, run the same
    command with --resume.
    """
    from core.evals.judge import judge_agreement, run_judge
    from core.safefiles import MAX_WHOLE_FILE_BYTES, require_regular_file

    if template_path is not None:
        require_regular_file(template_path, "--template", max_bytes=MAX_WHOLE_FILE_BYTES)
    evals, judges, reviews = _repositories(ctx)
    with progress_display(not as_json) as update:
        outcome = run_judge(
            evals,
            judges,
            baseline,
            candidate,
            model=model,
            template_path=template_path,
            batch_size=batch_size,
            max_field_chars=max_field_chars,
            progress=(lambda done, total: update("judge", done, total)) if update else None,
            workspace=_workspace(ctx),
            resume=resume,
        )
    run = outcome.run
    agreement = judge_agreement(
        judges.verdicts(run.judge_id),
        reviews.verdicts(run.baseline_eval_id, run.candidate_eval_id),
    )
    if as_json:
        payload = {
            "judge": run.as_json(),
            **outcome.summary.as_json(),
            "agreement": [entry.as_json() for entry in agreement],
        }
        print_json(payload)
        return
    click.echo(f"Stored judge run {run.judge_id} over {run.examples} examples")
    _print_summary(outcome.summary, run.judge_model)
    _print_agreement(agreement)


@judge_group.command("show")
@click.option("--baseline", required=True, help="The baseline eval (id or label).")
@click.option("--candidate", required=True, help="The candidate eval (id or label).")
@json_option
@click.pass_context
@reports_errors
def judge_show(ctx: click.Context, baseline: str, candidate: str, as_json: bool) -> None:
    """The latest judge run of the pair and its agreement with each human reviewer."""
    from core.evals.judge import example_slices, judge_view
    from store.errors import NotFoundError

    evals, judges, reviews = _repositories(ctx)
    first, second = evals.eval_by_ref(baseline), evals.eval_by_ref(candidate)
    slices = example_slices(evals, first)
    view = judge_view(
        judges, first, second, reviews.verdicts(first.eval_id, second.eval_id), slices
    )
    if view is None or view.summary is None:
        raise NotFoundError(
            f"no judge run for {first.label!r} vs {second.label!r}; run `ftod judge run "
            f"--baseline {first.label} --candidate {second.label} --model JUDGE`"
        )
    if as_json:
        payload = {
            "judge": view.run.as_json(),
            **view.summary.as_json(),
            "agreement": [entry.as_json() for entry in view.agreement],
        }
        print_json(payload)
        return
    click.echo(
        f"Judge run {view.run.judge_id} of {first.label} vs {second.label}, "
        f"{view.run.created_at:%Y-%m-%d %H:%M}, template {view.run.template_sha256[:12]}"
    )
    _print_summary(view.summary, view.run.judge_model)
    _print_agreement(view.agreement)
