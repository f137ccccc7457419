"""Home: the loop decide → data → baseline → train → evaluate → review → gate → ship, each
stage's status read from the store, with the next action and where to go for it.

Pure (no Textual): the Home screen shows what `loop_status` returns, and anything else (a
report, a CLI line) can show the same. It reads through the repositories it is given, so
core does not depend on the TUI's bundle; decision records and the knowledge audit's share
come in as plain values, from whoever reads them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from store.datasets import DatasetListing, DatasetRepository
from store.evals import EvalRecord, EvalRepository, GateResultRecord, ScorerSummary
from store.reviews import ReviewRepository
from store.runs import RunRecord, RunRepository

StageState = Literal["done", "attention", "todo"]
Stage = Literal["decide", "data", "baseline", "train", "evaluate", "review", "gate", "ship"]
STAGES: tuple[Stage, ...] = (
    "decide",
    "data",
    "baseline",
    "train",
    "evaluate",
    "review",
    "gate",
    "ship",
)

TargetScreen = Literal["decide", "datasets", "version", "evals", "runs", "run", "review"]

# Run states that end a run badly: they need a look before anything is built on them.
_BAD_RUN_STATES = ("failed", "interrupted")
# The order run states are counted in ("1 succeeded, 1 running").
_RUN_STATE_ORDER = ("succeeded", "running", "queued", "failed", "interrupted", "cancelled")


class LoopRepositories(Protocol):
    """The repositories Home reads (the TUI's `Repositories` bundle is one)."""

    @property
    def datasets(self) -> DatasetRepository: ...

    @property
    def runs(self) -> RunRepository: ...

    @property
    def evals(self) -> EvalRepository: ...

    @property
    def reviews(self) -> ReviewRepository: ...


@dataclass(frozen=True, slots=True)
class StageTarget:
    """The screen that carries a stage forward: `ref` names its object (a dataset version,
    a run id, the baseline eval of a review pair), `other` the review pair's candidate."""

    screen: TargetScreen
    ref: str = ""
    other: str = ""


@dataclass(frozen=True)
class StageStatus:
    stage: Stage
    status_text: str
    state: StageState
    next_action: str
    target: StageTarget | None
    """None where the dashboard has no screen for the stage (ship: no model registry yet)."""


@dataclass(frozen=True, slots=True)
class _Evidence:
    """What the stages after data share: the evals, their scores and gates, and the runs."""

    evals: tuple[EvalRecord, ...]
    summaries: Mapping[int, Sequence[ScorerSummary]]
    gates: Mapping[int, Sequence[GateResultRecord]]
    runs: tuple[RunRecord, ...]


def loop_status(
    repos: LoopRepositories,
    decisions: Sequence[Mapping[str, Any]] | None = None,
    audit_share: float | None = None,
) -> list[StageStatus]:
    """Every stage of the loop, in order, from the store's current contents.

    `decisions` are the newest decision records (newest first; their `name`, `verdict`
    and `version` are shown), `audit_share` the knowledge audit's share of assistant turns
    with volatile facts in the dataset the data row shows (None leaves it out).
    """
    listings = repos.datasets.list_datasets()
    summaries, gates = repos.evals.summaries_and_gates()
    evidence = _Evidence(
        evals=tuple(repos.evals.list_evals()),
        summaries=summaries,
        gates=gates,
        runs=tuple(repos.runs.list_runs()),
    )
    baseline = _baseline(evidence)
    candidate = _candidate(evidence, baseline)
    gate = _latest_gate(evidence, candidate)
    return [
        _decide_stage(decisions),
        _data_stage(
            repos.datasets,
            _training_dataset(repos.datasets, listings, evidence.runs),
            audit_share,
        ),
        _baseline_stage(evidence, baseline, gate),
        _train_stage(evidence.runs),
        _evaluate_stage(evidence, baseline, candidate, gate),
        _review_stage(repos.reviews, baseline, candidate),
        _gate_stage(baseline, candidate, gate),
        _ship_stage(gate),
    ]


def data_row_ref(repos: LoopRepositories) -> str | None:
    """NAME@V of the dataset version the data row describes (the one whose knowledge audit
    `audit_share` should come from), or None when there are no datasets."""
    listing = _training_dataset(
        repos.datasets, repos.datasets.list_datasets(), repos.runs.list_runs()
    )
    return None if listing is None else f"{listing.name}@{listing.latest_version}"


# -- choosing what each row is about -------------------------------------------------------


def _training_dataset(
    datasets: DatasetRepository, listings: Sequence[DatasetListing], runs: Sequence[RunRecord]
) -> DatasetListing | None:
    """The dataset the newest run trained on; else the newest one that was split (training
    data is split, eval sets need not be); else the newest dataset."""
    by_name = {listing.name: listing for listing in listings}
    for run in sorted(runs, key=lambda run: run.created_at or 0.0, reverse=True):
        if run.dataset:
            name = run.dataset.split(":", 1)[0].rpartition("@")[0] or run.dataset
            if name in by_name:
                return by_name[name]
    newest_first = sorted(listings, key=lambda listing: listing.created_at, reverse=True)
    for listing in newest_first:
        version = datasets.version(f"{listing.name}@{listing.latest_version}")
        if datasets.splits(version.version_id):
            return listing
    return newest_first[0] if newest_first else None


def _baseline(evidence: _Evidence) -> EvalRecord | None:
    """The base model's eval: the newest gate's baseline, else the newest eval without an
    adapter."""
    by_id = {record.eval_id: record for record in evidence.evals}
    newest_gate = max(
        (gate for results in evidence.gates.values() for gate in results),
        key=lambda gate: gate.gate_id,
        default=None,
    )
    if newest_gate is not None and newest_gate.baseline_eval_id in by_id:
        return by_id[newest_gate.baseline_eval_id]
    plain = [record for record in evidence.evals if not record.adapter]
    return max(plain, key=lambda record: record.eval_id, default=None)


def _candidate(evidence: _Evidence, baseline: EvalRecord | None) -> EvalRecord | None:
    """The eval measured against the baseline: the newest gated one, else the newest eval
    of the baseline's dataset version with an adapter (or any later one)."""
    by_id = {record.eval_id: record for record in evidence.evals}
    if baseline is None:
        return None
    gated = [
        gate
        for results in evidence.gates.values()
        for gate in results
        if gate.baseline_eval_id == baseline.eval_id and gate.candidate_eval_id in by_id
    ]
    if gated:
        return by_id[max(gated, key=lambda gate: gate.gate_id).candidate_eval_id]
    others = [
        record
        for record in evidence.evals
        if record.eval_id != baseline.eval_id and record.version_id == baseline.version_id
    ]
    tuned = [record for record in others if record.adapter]
    return max(tuned or others, key=lambda record: record.eval_id, default=None)


def _latest_gate(evidence: _Evidence, candidate: EvalRecord | None) -> GateResultRecord | None:
    if candidate is None:
        return None
    results = evidence.gates.get(candidate.eval_id, ())
    return results[-1] if results else None


def _score_text(
    summaries: Sequence[ScorerSummary], preferred: str | None = None
) -> tuple[str, float] | None:
    """The scorer to quote (the gate's, else the first by name) and its mean."""
    scored = [summary for summary in summaries if summary.mean is not None]
    chosen = next((summary for summary in scored if summary.scorer == preferred), None)
    if chosen is None and scored:
        chosen = scored[0]
    if chosen is None or chosen.mean is None:
        return None
    return chosen.scorer, chosen.mean


def _gate_scorer(gate: GateResultRecord | None) -> str | None:
    if gate is None:
        return None
    scorer = gate.spec.get("scorer")
    return str(scorer) if scorer else None


# -- the stages ----------------------------------------------------------------------------


def _decide_stage(decisions: Sequence[Mapping[str, Any]] | None) -> StageStatus:
    target = StageTarget("decide")
    if not decisions:
        return StageStatus(
            "decide",
            "no decision recorded",
            "todo",
            "Ask the question first: run `ftod decide NAME --symptom …`",
            target,
        )
    newest = decisions[0]
    name = str(newest.get("name") or "decision")
    verdict = str(newest.get("verdict") or "no verdict")
    version = newest.get("version")
    label = f"{name}@{version}" if version is not None else name
    state: StageState = "done" if verdict in ("fine_tune", "dont_fine_tune") else "attention"
    action = (
        f"Re-read the evidence when it changes: `ftod decide {name} --refresh`"
        if state == "done"
        else f"Fill in what is missing, then `ftod decide {name} --refresh`"
    )
    return StageStatus("decide", f"{label}: {verdict}", state, action, target)


def _data_stage(
    datasets: DatasetRepository, listing: DatasetListing | None, audit_share: float | None
) -> StageStatus:
    if listing is None:
        return StageStatus(
            "data",
            "no datasets",
            "todo",
            "Add a chat JSONL: `ftod data add FILE --name NAME` (or a on Datasets)",
            StageTarget("datasets"),
        )
    version = datasets.version(f"{listing.name}@{listing.latest_version}")
    parts = [
        version.ref,
        f"{listing.rows:,} rows",
        f"{listing.errors:,} error" + ("" if listing.errors == 1 else "s"),
    ]
    if audit_share is not None:
        parts.append(f"{audit_share:.0%} volatile facts")
    splits = datasets.splits(version.version_id)
    if not splits:
        parts.append("not split")
    target = StageTarget("version", version.ref)
    if listing.errors:
        noun = "error" if listing.errors == 1 else "errors"
        action = f"Look at the {listing.errors:,} {noun} in {version.ref} (enter opens it)"
        state: StageState = "attention"
    elif not splits:
        action = f"Split it without leakage: `ftod data split {version.ref} --val 0.1 --test 0.1`"
        state = "attention"
    else:
        action = f"{version.ref} is checked and split (enter opens it)"
        state = "done"
    return StageStatus("data", ", ".join(parts), state, action, target)


def _baseline_stage(
    evidence: _Evidence, baseline: EvalRecord | None, gate: GateResultRecord | None
) -> StageStatus:
    if baseline is None:
        return StageStatus(
            "baseline",
            "no eval of the base model",
            "todo",
            "Measure the base model with its best prompt: "
            "`ftod eval --model BASE --prompt P --data NAME@V --label base`",
            StageTarget("evals"),
        )
    score = _score_text(evidence.summaries.get(baseline.eval_id, ()), _gate_scorer(gate))
    text = baseline.label if score is None else f"{baseline.label}, {score[0]} {score[1]:.3f}"
    if score is None:
        return StageStatus(
            "baseline",
            f"{text}, not scored",
            "attention",
            "No scorer scored it: import its outputs again with one, as in "
            f"`ftod eval import --data {baseline.data_ref} --outputs FILE --label NEW "
            "--scorer rouge_l`",
            StageTarget("evals"),
        )
    return StageStatus(
        "baseline", text, "done", f"{baseline.label} on {baseline.data_ref}", StageTarget("evals")
    )


def _train_stage(runs: Sequence[RunRecord]) -> StageStatus:
    if not runs:
        return StageStatus(
            "train",
            "no runs",
            "todo",
            "Launch a run: `ftod train CONFIG.yaml` (or n on Runs)",
            StageTarget("runs"),
        )
    counts = Counter(run.state for run in runs)
    order = [state for state in _RUN_STATE_ORDER if counts[state]]
    order += sorted(state for state in counts if state not in _RUN_STATE_ORDER)
    text = ", ".join(f"{counts[state]} {state}" for state in order)
    newest = max(runs, key=lambda run: run.created_at or 0.0)
    running = [run for run in runs if run.state == "running"]
    bad = [run for run in runs if run.state in _BAD_RUN_STATES]
    if running:
        watched = max(running, key=lambda run: run.created_at or 0.0)
        return StageStatus(
            "train",
            text,
            "attention",
            f"Watch {watched.name} (enter opens it)",
            StageTarget("run", watched.run_id),
        )
    if newest.state in _BAD_RUN_STATES or (bad and not counts["succeeded"]):
        broken = newest if newest.state in _BAD_RUN_STATES else bad[-1]
        reason = f" ({broken.reason})" if broken.reason else ""
        return StageStatus(
            "train",
            text,
            "attention",
            f"See why {broken.name} {broken.state}{reason} (enter opens it)",
            StageTarget("run", broken.run_id),
        )
    if counts["succeeded"]:
        return StageStatus(
            "train",
            text,
            "done",
            f"Newest run: {newest.name} (enter opens the runs)",
            StageTarget("runs"),
        )
    return StageStatus(
        "train",
        text,
        "attention",
        "No run has succeeded yet (enter opens the runs)",
        StageTarget("runs"),
    )


def _evaluate_stage(
    evidence: _Evidence,
    baseline: EvalRecord | None,
    candidate: EvalRecord | None,
    gate: GateResultRecord | None,
) -> StageStatus:
    if candidate is None:
        succeeded = [run for run in evidence.runs if run.state == "succeeded"]
        if succeeded and baseline is not None:
            run = max(succeeded, key=lambda run: run.created_at or 0.0)
            return StageStatus(
                "evaluate",
                "no eval of a fine-tuned model",
                "attention",
                f"Evaluate {run.name} against {baseline.label}: "
                f"`ftod compare-run --model BASE --adapter {run.run_id} …`",
                StageTarget("evals"),
            )
        return StageStatus(
            "evaluate",
            "no eval of a fine-tuned model",
            "todo",
            "Train first, then evaluate the adapter on the baseline's eval set",
            StageTarget("evals"),
        )
    scorer = _gate_scorer(gate)
    score = _score_text(evidence.summaries.get(candidate.eval_id, ()), scorer)
    text = candidate.label
    if score is not None:
        text += f", {score[0]} {score[1]:.3f}"
    return StageStatus(
        "evaluate",
        text,
        "done",
        f"{candidate.label} on {candidate.data_ref} (enter opens the evals)",
        StageTarget("evals"),
    )


def _review_stage(
    reviews: ReviewRepository, baseline: EvalRecord | None, candidate: EvalRecord | None
) -> StageStatus:
    if baseline is None or candidate is None:
        return StageStatus(
            "review",
            "no pair to review",
            "todo",
            "A baseline and a candidate eval of one eval set make a pair to review",
            StageTarget("evals"),
        )
    pair = f"{baseline.label} vs {candidate.label}"
    target = StageTarget("review", baseline.label, candidate.label)
    verdicts = reviews.verdicts(baseline.eval_id, candidate.eval_id)
    if not verdicts:
        return StageStatus(
            "review",
            f"{pair}: not reviewed",
            "todo",
            f"Read {pair} side by side: `ftod review` (enter opens the review room)",
            target,
        )
    lines = len({record.line for record in verdicts})
    people = len({record.reviewer for record in verdicts})
    noun = "reviewer" if people == 1 else "reviewers"
    return StageStatus(
        "review",
        f"{pair}: {lines:,} examples reviewed by {people} {noun}",
        "done",
        f"Go on reviewing {pair} (enter opens the review room)",
        target,
    )


def _gate_stage(
    baseline: EvalRecord | None, candidate: EvalRecord | None, gate: GateResultRecord | None
) -> StageStatus:
    if baseline is None or candidate is None:
        return StageStatus(
            "gate",
            "not gated",
            "todo",
            "A gate needs a baseline and a candidate eval",
            StageTarget("evals"),
        )
    if gate is None:
        return StageStatus(
            "gate",
            f"{candidate.label}: not gated",
            "todo",
            f"`ftod gate --spec gate.yaml --baseline {baseline.label} "
            f"--candidate {candidate.label}`",
            StageTarget("evals"),
        )
    if gate.passed:
        return StageStatus(
            "gate",
            f"PASS: {candidate.label} over {baseline.label}",
            "done",
            f"Every rule of gate {gate.spec_hash[:12]} passed (enter opens the evals)",
            StageTarget("evals"),
        )
    kinds = _failed_kinds(gate)
    text = "FAIL on " + ", ".join(kinds) if kinds else "FAIL"
    return StageStatus(
        "gate",
        text,
        "attention",
        f"See which slices {candidate.label} lost (enter opens the evals)",
        StageTarget("evals"),
    )


def _failed_kinds(gate: GateResultRecord) -> list[str]:
    """The kinds of the rules that failed ("regression", "target"), each once, in order."""
    kinds: list[str] = []
    for result in gate.verdict.get("rules", ()):
        if isinstance(result, Mapping) and not result.get("passed", True):
            rule = result.get("rule")
            kind = str(rule.get("kind")) if isinstance(rule, Mapping) else ""
            if kind and kind not in kinds:
                kinds.append(kind)
    return kinds


def _ship_stage(gate: GateResultRecord | None) -> StageStatus:
    before = "the gate passed; " if gate is not None and gate.passed else ""
    return StageStatus(
        "ship",
        "not shipped — no model registry yet",
        "todo",
        f"Nothing to do here yet: {before}ftod has no model registry to ship to",
        None,
    )


def first_open_stage(stages: Sequence[StageStatus]) -> int:
    """The index of the first stage that is not done (the one to work on), else 0."""
    return next((index for index, stage in enumerate(stages) if stage.state != "done"), 0)


__all__ = [
    "STAGES",
    "LoopRepositories",
    "StageStatus",
    "StageTarget",
    "data_row_ref",
    "first_open_stage",
    "loop_status",
]
