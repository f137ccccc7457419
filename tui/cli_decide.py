"""`ftod decide [NAME] --symptom …`, `ftod decide list` and `ftod decide show NAME`: the
decision desk from the command line."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from tui.cli_common import _announce_wait_once, _workspace, json_option, reports_errors

SUBCOMMANDS = ("list", "show")
DECIDE = "decide-one"


class DecideGroup(click.Group):
    """`ftod decide NAME …` and `ftod decide --symptom …` mean the hidden `decide-one`
    command; `list` and `show` stay subcommands. A group argument would swallow them."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = [DECIDE, *args]
        return super().parse_args(ctx, args)


def _repositories(ctx: click.Context) -> Any:
    from core.decide.decision import Repositories
    from store.datasets import DatasetRepository
    from store.db import Store
    from store.decisions import DecisionRepository
    from store.evals import EvalRepository
    from store.prompts import PromptRepository

    store = Store.open(_workspace(ctx), on_wait=_announce_wait_once())
    return Repositories(
        DatasetRepository(store),
        EvalRepository(store),
        PromptRepository(store),
        DecisionRepository(store),
    )


@click.group("decide", cls=DecideGroup)
def decide_group() -> None:
    """Fine-tune, or don't: each symptom to its cheapest route, the minimum proof read from
    the store, and a verdict.

    \b
    ftod decide [NAME] --symptom ID [--symptom ID …] [--dataset NAME@V] [--split SPLIT]
        [--eval-set NAME@V[:SPLIT]] [--baseline EVAL] [--gate-spec FILE]
        [--requests-per-day N] [--stable|--unstable] [--json]
    ftod decide NAME --refresh [--json]
    ftod decide list [--json]
    ftod decide show NAME[@V] [--json] [--markdown]

    With NAME the decision is stored as a new version of that record; without, nothing is
    stored. Exit 0 for any verdict, 2 for unusable input."""


@decide_group.command(DECIDE, hidden=True)
@click.argument("name", required=False)
@click.option("--symptom", "symptoms", multiple=True, help="A symptom id (repeatable).")
@click.option("--dataset", default=None, help="The training data: NAME@V.")
@click.option("--split", default=None, help="The training split of the dataset (train).")
@click.option("--eval-set", default=None, help="The eval set: NAME@V or NAME@V:SPLIT.")
@click.option("--baseline", default=None, help="The baseline eval (label or id).")
@click.option(
    "--gate-spec", type=click.Path(path_type=Path), default=None, help="The gate spec (YAML)."
)
@click.option("--requests-per-day", type=float, default=None, help="Requests per day served.")
@click.option(
    "--stable/--unstable", default=None, help="Whether the behaviour stays the same over months."
)
@click.option("--refresh", is_flag=True, help="Re-read the evidence of decision NAME.")
@json_option
@click.pass_context
@reports_errors
def decide_one(
    ctx: click.Context,
    name: str | None,
    symptoms: tuple[str, ...],
    dataset: str | None,
    split: str | None,
    eval_set: str | None,
    baseline: str | None,
    gate_spec: Path | None,
    requests_per_day: float | None,
    stable: bool | None,
    refresh: bool,
    as_json: bool,
) -> None:
    """Decide from the named symptoms and the workspace's evidence; store it as NAME."""
    from core.decide.decision import DecideRequest, check_symptoms, decide_with_audit, dumps
    from core.safefiles import MAX_WHOLE_FILE_BYTES, require_regular_file
    from core.settings import load_settings
    from core.splits import SPLIT_NAMES
    from store.errors import InputError

    repos = _repositories(ctx)
    if refresh:
        given = [symptoms, dataset, split, eval_set, baseline, gate_spec, requests_per_day]
        if name is None or any(given) or stable is not None:
            raise InputError(
                "--refresh takes only NAME: it re-reads the evidence of the stored decision "
                "with the inputs it was made with",
                field="refresh",
            )
        previous = repos.decisions.versions(name)[-1]
        request = DecideRequest.from_json(previous.inputs)
    else:
        check_symptoms(symptoms)
        if split is not None and split not in SPLIT_NAMES:
            raise InputError(
                f"--split must be one of {', '.join(SPLIT_NAMES)}, not {split!r}", field="split"
            )
        if requests_per_day is not None and (
            not math.isfinite(requests_per_day) or requests_per_day < 0
        ):
            raise InputError(
                "--requests-per-day must be a number of requests, 0 or more",
                field="requests_per_day",
            )
        spec_json = None
        if gate_spec is not None:
            from core.evals.gate import load_gate_spec

            require_regular_file(gate_spec, "--gate-spec", max_bytes=MAX_WHOLE_FILE_BYTES)
            spec_json = load_gate_spec(gate_spec).as_json()
        request = DecideRequest(
            symptoms=tuple(symptoms),
            dataset=dataset,
            split=split,
            eval_set=eval_set,
            baseline=baseline,
            gate_spec_path=None if gate_spec is None else str(gate_spec),
            gate_spec=spec_json,
            requests_per_day=requests_per_day,
            stable=stable,
        )
    settings = load_settings(_workspace(ctx).root)
    decision = decide_with_audit(
        repos,
        request,
        settings,
        cost_for=lambda links: _cost_at_volume(ctx, repos, request, settings, links),
        with_gate=refresh,
    )
    payload = decision.as_json()
    version = None
    if name is not None:
        version = _store(repos, name, request, payload)
        payload["record"] = {"name": name, "version": version}
    if as_json:
        click.echo(dumps(payload))
        return
    _print_decision(payload)
    if version is not None:
        click.echo(f"Stored as decision {name}@{version}.")


def _cost_at_volume(
    ctx: click.Context, repos: Any, request: Any, settings: Any, links: Mapping[str, Any]
) -> dict[str, Any] | None:
    """`ftod cost` for the decision: only at a stated volume (--requests-per-day), with the
    decision's baseline and, once there is one, the gated candidate; prices from the
    workspace settings, shown as assumptions. None when no volume was stated."""
    if request.requests_per_day is None:
        return None
    from core.decide.cost import CostAssumptions, cost_report
    from store.runs import RunRepository

    runs = RunRepository(repos.datasets.store)
    succeeded = [record for record in runs.list_runs() if record.state == "succeeded"]

    def label(eval_id: int | None) -> str | None:
        return None if eval_id is None else str(repos.evals.eval_by_id(eval_id).label)

    report = cost_report(
        workspace=_workspace(ctx),
        runs=runs,
        evals=repos.evals,
        run_id=succeeded[0].run_id if succeeded else None,
        baseline_eval=label(links.get("baseline_eval_id")),
        candidate_eval=label(links.get("candidate_eval_id")),
        requests_per_day=request.requests_per_day,
        assumptions=CostAssumptions.resolve(settings),
    )
    return report.as_json()


def _store(repos: Any, name: str, request: Any, payload: dict[str, Any]) -> int:
    from core.evals.review import current_reviewer
    from store.decisions import DecisionToStore

    links = payload["links"]
    answers = {"requests_per_day": request.requests_per_day, "stable": request.stable}
    version: int = repos.decisions.add_decision(
        DecisionToStore(
            name=name,
            verdict=payload["verdict"],
            symptoms=list(request.symptoms),
            answers=answers,
            inputs=request.as_json(),
            payload=payload,
            reviewer=current_reviewer(),
            dataset_version_id=links["dataset_version_id"],
            baseline_eval_id=links["baseline_eval_id"],
            gate_spec_hash=links["gate_spec_hash"],
            candidate_eval_id=links["candidate_eval_id"],
            run_id=links["run_id"],
        )
    )
    return version


def _print_decision(payload: dict[str, Any]) -> None:
    click.echo(f"Verdict: {payload['verdict']}")
    click.echo(payload["summary"])
    click.echo("\nRoutes:")
    for route in payload["routes"]:
        click.echo(f"  {route['symptom']}: {route['route']} — {route['reason']}")
    click.echo("\nThe minimum proof:")
    for item in payload["checklist"]:
        reason = item["evidence"].get("reason")
        click.echo(f"  [{item['status']:>7}] {item['id']}" + (f": {reason}" if reason else ""))
    if payload["next_steps"]:
        click.echo("\nTo close:")
        for step in payload["next_steps"]:
            click.echo(f"  {step['item']}: {step['command']}")
    if payload.get("gate"):
        click.echo(f"\nGate: {payload['gate']['verdict']}")


@decide_group.command("list")
@json_option
@click.pass_context
@reports_errors
def decide_list(ctx: click.Context, as_json: bool) -> None:
    """The latest version of every decision record."""
    from core.decide.decision import dumps

    rows = _repositories(ctx).decisions.list_latest()
    if as_json:
        click.echo(
            dumps(
                [
                    {
                        "name": record.name,
                        "version": record.version,
                        "versions": versions,
                        "verdict": record.verdict,
                        "symptoms": list(record.symptoms),
                        "reviewer": record.reviewer,
                        "created_at": record.created_at.isoformat(),
                    }
                    for record, versions in rows
                ]
            )
        )
        return
    if not rows:
        click.echo("No decisions yet. Make one with `ftod decide NAME --symptom ID`.")
        return
    for record, versions in rows:
        click.echo(
            f"{record.ref:<30} {record.verdict:<15} {', '.join(record.symptoms)}  "
            f"({versions} version{'s' if versions != 1 else ''}, {record.reviewer}, "
            f"{record.created_at:%Y-%m-%d %H:%M})"
        )


@decide_group.command("show")
@click.argument("name")
@click.option("--markdown", "as_markdown", is_flag=True, help="A page for the decision meeting.")
@json_option
@click.pass_context
@reports_errors
def decide_show(ctx: click.Context, name: str, as_markdown: bool, as_json: bool) -> None:
    """One decision record (NAME for the latest, NAME@V for a version) and what changed."""
    from core.decide.decision import dumps
    from core.decide.record import changes, markdown, record_json
    from store.errors import NotFoundError

    base, _, number = name.rpartition("@") if "@" in name else (name, "", "")
    versions = _repositories(ctx).decisions.versions(base)
    chosen = versions[-1]
    if number:
        matching = [record for record in versions if str(record.version) == number.lstrip("v")]
        if not matching:
            known = ", ".join(str(record.version) for record in versions)
            raise NotFoundError(f"{base} has no version {number} (versions: {known})")
        chosen = matching[0]
    earlier = [record for record in versions if record.version < chosen.version]
    previous = earlier[-1] if earlier else None
    if as_json:
        click.echo(dumps(record_json(chosen, previous)))
        return
    if as_markdown:
        click.echo(markdown(chosen, previous), nl=False)
        return
    _print_decision(chosen.payload)
    click.echo(f"\nDecision {chosen.ref} by {chosen.reviewer}, {chosen.created_at:%Y-%m-%d %H:%M}")
    found = changes(previous, chosen)
    if previous is not None:
        click.echo(f"Changed since version {previous.version}:")
        for change in found or [{"field": "nothing", "from": "", "to": ""}]:
            click.echo(f"  {change['field']}: {change['from']} → {change['to']}")
