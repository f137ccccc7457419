"""`ftod review`: the review room over a baseline/candidate pair of evals (opens straight into
the queue, so `ssh -t host ftod review` works), and `ftod review export` of the verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tui.cli_common import _workspace, open_store, reports_errors

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


def default_pair(evals: Any) -> tuple[str, str]:
    """The two most recent evals on one dataset version: (older, newer) as labels."""
    from store.errors import InputError

    records = evals.list_evals()
    if len(records) < 2:
        raise InputError(
            f"the review room needs two evals of one dataset version; this workspace has "
            f"{len(records)}. Import outputs with `ftod eval import`, or name them with "
            "--baseline and --candidate."
        )
    newest = records[-1]
    for record in reversed(records[:-1]):
        if record.version_id == newest.version_id:
            return str(record.label), str(newest.label)
    raise InputError(
        f"the latest eval {newest.label!r} ({newest.data_ref}) has no earlier eval on the same "
        "dataset version; name the pair with --baseline and --candidate"
    )


def _resolve_pair(
    ctx: click.Context, baseline: str | None, candidate: str | None
) -> tuple[str, str]:
    from store.errors import InputError

    if baseline is not None and candidate is not None:
        return baseline, candidate
    if baseline is not None or candidate is not None:
        raise InputError("name both --baseline and --candidate, or neither")
    evals, _reviews = _stores(ctx)
    return default_pair(evals)


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
@click.pass_context
@reports_errors
def review(
    ctx: click.Context, baseline: str | None, candidate: str | None, scorer: str | None
) -> None:
    """Judge baseline against candidate, example by example (keyboard only).

    Without --baseline/--candidate: the two most recent evals of one dataset version.
    Your name is $FTOD_REVIEWER, else your login name.
    """
    if ctx.invoked_subcommand is not None:
        return
    baseline, candidate = _resolve_pair(ctx, baseline, candidate)
    evals, _reviews = _stores(ctx)
    # Fail here, with a message, rather than inside the dashboard.
    evals.eval_by_ref(baseline)
    evals.eval_by_ref(candidate)
    review_app(_workspace(ctx), baseline, candidate, scorer).run()


@review.command("export")
@click.option("--baseline", required=True, help="The baseline eval (id or label).")
@click.option("--candidate", required=True, help="The candidate eval (id or label).")
@click.option(
    "-o", "--output", required=True, type=click.Path(path_type=Path), help="The JSONL to write."
)
@click.option("--reviewer", default=None, help="Only this reviewer's verdicts (default all).")
@click.pass_context
@reports_errors
def review_export(
    ctx: click.Context, baseline: str, candidate: str, output: Path, reviewer: str | None
) -> None:
    """Write verdicts and corrected answers as JSONL, ready to add as a dataset version.

    Each row's messages are the input plus the corrected answer, else the preferred output.
    """
    from core.evals.review import export_reviews, write_jsonl

    evals, reviews = _stores(ctx)
    outcome = export_reviews(evals, reviews, baseline, candidate, reviewer)
    count = write_jsonl(outcome.rows, output)
    click.echo(f"Wrote {count} reviewed examples to {output}")
    if outcome.left_out:
        click.echo(
            f"note: {outcome.left_out} 'both wrong' verdicts without a corrected answer were "
            "left out",
            err=True,
        )
