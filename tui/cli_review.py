"""`ftod review`: the review room over a baseline/candidate pair of evals (opens straight into
the queue, so `ssh -t host ftod review` works), and `ftod review export` of the verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tui.cli_common import _workspace, open_store, reports_errors
from tui.cli_scorers import load_scorers, scorer_file_option

if TYPE_CHECKING:
    from store.evals import EvalRepository
    from store.reviews import ReviewRepository
    from store.workspace import Workspace
    from tui.app import FtodApp


def _stores(ctx: click.Context) -> tuple[EvalRepository, ReviewRepository]:
    from store.evals import EvalRepository
    from store.reviews import ReviewRepository

    store = open_store(ctx)
    return EvalRepository(store), ReviewRepository(store)


def default_pair(evals: Any, candidate: str | None = None) -> tuple[str, str]:
    """(baseline, candidate) as labels, by core's `choose_review_pair`, the rule the Evals
    screen follows: the candidate (default the newest eval) against the baseline of its
    latest gate result, else the latest earlier eval of its dataset version."""
    from core.evals.review import PairChoice, choose_review_pair
    from store.errors import InputError

    records = evals.list_evals()
    if candidate is None and len(records) < 2:
        raise InputError(
            f"the review room needs two evals of one dataset version; this workspace has "
            f"{len(records)}. Import outputs with `ftod eval import`, or name them with "
            "--baseline and --candidate."
        )
    chosen = evals.eval_by_ref(candidate) if candidate is not None else records[-1]
    choice = choose_review_pair(records, chosen.eval_id, evals.gate_results(chosen.eval_id))
    if isinstance(choice, PairChoice):
        return choice.baseline.label, choice.candidate.label
    raise InputError(
        f"the {'latest ' if candidate is None else ''}eval {chosen.label!r} ({chosen.data_ref}) "
        "has no gate result and no earlier eval on the same dataset version; name the pair "
        "with --baseline and --candidate"
    )


def _resolve_pair(
    ctx: click.Context, baseline: str | None, candidate: str | None
) -> tuple[str, str]:
    from store.errors import InputError

    if baseline is not None and candidate is not None:
        return baseline, candidate
    if baseline is not None:
        raise InputError(
            "--baseline needs a candidate: name both --baseline and --candidate, only "
            "--candidate (its baseline is chosen as the Evals screen does), or neither"
        )
    evals, _reviews = _stores(ctx)
    return default_pair(evals, candidate)


def review_app(
    workspace: Workspace, baseline: str, candidate: str, scorer: str | None = None
) -> FtodApp:
    """The dashboard opened on the review screen of one pair."""
    from tui.app import FtodApp
    from tui.screens.review import ReviewScreen

    class ReviewApp(FtodApp):
        def on_mount(self) -> None:
            super().on_mount()
            self.push_screen(ReviewScreen(baseline, candidate, scorer))

    return ReviewApp(workspace)


@click.group("review", invoke_without_command=True)
@click.option("--baseline", default=None, help="The baseline eval (id or label).")
@click.option("--candidate", default=None, help="The candidate eval (id or label).")
@click.option("--scorer", default=None, help="The scorer that sorts the queue (default exact).")
@scorer_file_option
@click.pass_context
@reports_errors
def review(
    ctx: click.Context,
    baseline: str | None,
    candidate: str | None,
    scorer: str | None,
    scorer_files: tuple[Path, ...],
) -> None:
    """Judge baseline against candidate, example by example (keyboard only).

    Without --baseline: the candidate (default the newest eval) against the baseline of its
    latest gate, else the latest earlier eval of its dataset version, as the Evals screen.
    Your name is $FTOD_REVIEWER, else your login name.
    """
    if ctx.invoked_subcommand is not None:
        return
    baseline, candidate = _resolve_pair(ctx, baseline, candidate)
    evals, _reviews = _stores(ctx)
    # Fail here, with a message, rather than inside the dashboard.
    evals.eval_by_ref(baseline)
    evals.eval_by_ref(candidate)
    load_scorers(ctx, scorer_files)
    review_app(_workspace(ctx), baseline, candidate, scorer).run()


@review.command("export")
@click.option("--baseline", required=True, help="The baseline eval (id or label).")
@click.option("--candidate", required=True, help="The candidate eval (id or label).")
@click.option(
    "-o", "--output", required=True, type=click.Path(path_type=Path), help="The JSONL to write."
)
@click.option("--reviewer", default=None, help="Only this reviewer's verdicts (default all).")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@click.pass_context
@reports_errors
def review_export(
    ctx: click.Context,
    baseline: str,
    candidate: str,
    output: Path,
    reviewer: str | None,
    force: bool,
) -> None:
    """Write verdicts and corrected answers as JSONL, ready to add as a dataset version.

    Each row's messages are the input plus the corrected answer, else the preferred output.
    """
    from core.evals.review import export_reviews, write_jsonl_to
    from core.safefiles import output_file, output_target

    # Checked before the store is read, so a wrong -o costs nothing.
    _real, replacing = output_target(output, overwrite=force)
    evals, reviews = _stores(ctx)
    outcome = export_reviews(evals, reviews, baseline, candidate, reviewer)
    with output_file(output, overwrite=force) as handle:
        count = write_jsonl_to(outcome.rows, handle)
    replaced = " (replaced the file that was there)" if replacing else ""
    click.echo(f"Wrote {count} reviewed examples to {output}{replaced}")
    if outcome.left_out:
        click.echo(
            f"note: {outcome.left_out} 'both wrong' verdicts without a corrected answer were "
            "left out",
            err=True,
        )
