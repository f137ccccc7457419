"""The decision: the routes, the proof and the verdict, gathered from the store.

`fine_tune` only when a route says so and every item of the proof passes; `not_yet` when a
route waits on evidence (the proof is open, or the failures have no pattern yet); otherwise
`dont_fine_tune`, because every symptom has a cheaper route that fits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.decide.checklist import (
    AuditSummary,
    ChecklistItem,
    EvidenceSources,
    build_checklist,
    load_thresholds,
)
from core.decide.diagnosis import PrefixMeasure, Route, diagnose, measure_prefix
from core.decide.symptoms import SYMPTOM_IDS
from core.evals.gate import GateSpec, load_gate_spec, parse_gate_spec
from core.evals.service import parse_data_ref
from core.settings import WorkspaceSettings
from store.datasets import DatasetRepository, VersionRecord
from store.decisions import DecisionRepository
from store.errors import InputError, NotFoundError
from store.evals import EvalRecord, EvalRepository, GateResultRecord
from store.prompts import PromptRepository

Verdict = Literal["fine_tune", "dont_fine_tune", "not_yet"]
VERDICTS: tuple[Verdict, ...] = ("fine_tune", "dont_fine_tune", "not_yet")
SHIP = "beat base + best prompt on task, held on regression: ship"
DONT_SHIP = "did not beat base + best prompt on task and hold on regression: don't ship"

# The command that closes each open item; NAME, DATA and the like are the user's to fill in.
FIXES: Mapping[str, str] = {
    "baseline_eval": "ftod eval run --model BASE --prompt PROMPT --data DATA@V:test "
    "--label baseline, then --baseline baseline",
    "baseline_falls_short": "ftod eval run --model BASE --prompt PROMPT --data DATA@V:test "
    "--scorer SCORER --label baseline (scorers and slices tied to the symptom)",
    "enough_examples": "add clean examples: ftod data add MORE.jsonl --name DATA",
    "data_clean": "ftod data show DATA@V to list the error findings; fix them and "
    "ftod data add FIXED.jsonl --name DATA",
    "knowledge_audit": "ftod data check FILE --json (knowledge_audit); move volatile facts "
    "into retrieval or the prompt and template them out of the answers",
    "eval_held_out": "ftod data split DATA@V, then --eval-set DATA@V:test",
    "gate_spec": "write a gate spec with a target and a regression rule, then --gate-spec "
    "gate.yaml",
    "value": "answer --requests-per-day N and --stable or --unstable",
}


@dataclass(frozen=True, slots=True)
class DecideRequest:
    """What the user asked with; stored with the record so `--refresh` can ask again."""

    symptoms: tuple[str, ...]
    dataset: str | None = None
    split: str | None = None
    eval_set: str | None = None
    baseline: str | None = None
    gate_spec_path: str | None = None
    gate_spec: Mapping[str, Any] | None = None
    """The parsed spec (defaults resolved), so a refresh does not need the file again."""
    requests_per_day: float | None = None
    stable: bool | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "symptoms": list(self.symptoms),
            "dataset": self.dataset,
            "split": self.split,
            "eval_set": self.eval_set,
            "baseline": self.baseline,
            "gate_spec_path": self.gate_spec_path,
            "gate_spec": None if self.gate_spec is None else dict(self.gate_spec),
            "requests_per_day": self.requests_per_day,
            "stable": self.stable,
        }

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> DecideRequest:
        rpd = payload.get("requests_per_day")
        return cls(
            symptoms=tuple(payload.get("symptoms") or ()),
            dataset=payload.get("dataset"),
            split=payload.get("split"),
            eval_set=payload.get("eval_set"),
            baseline=payload.get("baseline"),
            gate_spec_path=payload.get("gate_spec_path"),
            gate_spec=payload.get("gate_spec"),
            requests_per_day=None if rpd is None else float(rpd),
            stable=payload.get("stable"),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    routes: tuple[Route, ...]
    checklist: tuple[ChecklistItem, ...]
    knowledge_audit: dict[str, Any] | None
    cost: dict[str, Any] | None
    summary: str
    next_steps: tuple[dict[str, str], ...]
    assumptions: tuple[dict[str, Any], ...] = ()
    prefix: PrefixMeasure | None = None
    gate: dict[str, Any] | None = None
    links: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "verdict": self.verdict,
            "routes": [route.as_json() for route in self.routes],
            "checklist": [item.as_json() for item in self.checklist],
            "knowledge_audit": self.knowledge_audit,
            "cost": self.cost,
            "summary": self.summary,
            "next_steps": [dict(step) for step in self.next_steps],
            "route_next_steps": [
                {"symptom": route.symptom, "next_step": route.next_step} for route in self.routes
            ],
            "assumptions": [dict(item) for item in self.assumptions],
            "prefix": None if self.prefix is None else self.prefix.as_json(),
            "gate": self.gate,
            "links": dict(self.links),
        }
        cleaned: dict[str, Any] = strict_json(payload)
        return cleaned


def strict_json(value: Any) -> Any:
    """`value` with every non-finite float made None, so the JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(key): strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    return value


def check_symptoms(symptoms: Sequence[str]) -> tuple[str, ...]:
    if not symptoms:
        raise InputError(
            "name at least one --symptom; known symptoms: " + ", ".join(SYMPTOM_IDS),
            field="symptom",
        )
    unknown = [symptom for symptom in symptoms if symptom not in SYMPTOM_IDS]
    if unknown:
        raise InputError(
            f"unknown symptom {', '.join(map(repr, unknown))}; known symptoms: "
            + ", ".join(SYMPTOM_IDS),
            field="symptom",
        )
    return tuple(dict.fromkeys(symptoms))


def verdict_of(routes: Sequence[Route], checklist: Sequence[ChecklistItem]) -> Verdict:
    proven = all(item.status == "pass" for item in checklist)
    kinds = {route.route for route in routes}
    if "fine_tune" in kinds and proven:
        return "fine_tune"
    if kinds & {"fine_tune", "not_yet", "evaluate_first"}:
        return "not_yet"
    return "dont_fine_tune"


def _summary(verdict: Verdict, routes: Sequence[Route], checklist: Sequence[ChecklistItem]) -> str:
    if verdict == "fine_tune":
        return "Fine-tune: every item of the proof passes for " + ", ".join(
            route.symptom for route in routes if route.route == "fine_tune"
        )
    if verdict == "not_yet":
        waiting = [item.id for item in checklist if item.status != "pass"]
        first = [route.symptom for route in routes if route.route == "evaluate_first"]
        parts = []
        if waiting:
            parts.append("open items: " + ", ".join(waiting))
        if first:
            parts.append("evaluate first for " + ", ".join(first))
        return "Not yet: " + "; ".join(parts)
    cheaper = ", ".join(f"{route.route} for {route.symptom}" for route in routes)
    return f"Don't fine-tune: a cheaper route fits ({cheaper})"


def decide(
    symptoms: Sequence[str],
    checklist: Sequence[ChecklistItem],
    *,
    prefix: PrefixMeasure | None = None,
    cost: Mapping[str, Any] | None = None,
    audit: AuditSummary | None = None,
    assumptions: Sequence[Mapping[str, Any]] = (),
    gate: Mapping[str, Any] | None = None,
    links: Mapping[str, Any] | None = None,
) -> Decision:
    """The verdict from the symptoms and the proof; the store is read by the caller."""
    chosen = check_symptoms(symptoms)
    routes = diagnose(chosen, checklist, prefix=prefix, cost=cost)
    verdict = verdict_of(routes, checklist)
    next_steps: tuple[dict[str, str], ...] = ()
    if verdict == "not_yet":
        next_steps = tuple(
            {"item": item.id, "status": item.status, "command": FIXES[item.id]}
            for item in checklist
            if item.status != "pass"
        )
    return Decision(
        verdict=verdict,
        routes=routes,
        checklist=tuple(checklist),
        knowledge_audit=None if audit is None else strict_json(audit.as_json()),
        cost=None if cost is None else strict_json(dict(cost)),
        summary=_summary(verdict, routes, checklist),
        next_steps=next_steps,
        assumptions=tuple(dict(item) for item in assumptions),
        prefix=prefix,
        gate=None if gate is None else dict(gate),
        links=dict(links or {}),
    )


# -- from the store ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Repositories:
    datasets: DatasetRepository
    evals: EvalRepository
    prompts: PromptRepository
    decisions: DecisionRepository


def _latest_base_eval(
    evals: EvalRepository, version_id: int, split: str | None
) -> EvalRecord | None:
    found = [
        e
        for e in evals.list_evals()
        if e.version_id == version_id and e.adapter is None and (split is None or e.split == split)
    ]
    return found[-1] if found else None


def _gate_spec(request: DecideRequest) -> tuple[GateSpec | None, str | None]:
    if request.gate_spec is not None:
        return parse_gate_spec(dict(request.gate_spec), "stored gate spec"), request.gate_spec_path
    if request.gate_spec_path is not None:
        return load_gate_spec(Path(request.gate_spec_path)), request.gate_spec_path
    return None, None


def _split_plan(repos: Repositories, version: VersionRecord, split: str | None) -> int | None:
    if split is None:
        return None
    plans = repos.datasets.splits(version.version_id)
    if not plans:
        raise NotFoundError(
            f"{version.ref} has no splits; run `ftod data split {version.ref}` or leave out --split"
        )
    return plans[-1].split_id


def _latest_gate(
    evals: EvalRepository, baseline: EvalRecord, spec_hash: str | None
) -> GateResultRecord | None:
    _summaries, gates = evals.summaries_and_gates()
    found = [
        result
        for results in gates.values()
        for result in results
        if result.baseline_eval_id == baseline.eval_id
        and (spec_hash is None or result.spec_hash == spec_hash)
    ]
    return max(found, key=lambda result: result.gate_id) if found else None


def _gate_json(result: GateResultRecord) -> dict[str, Any]:
    failed = [
        f"{rule.get('rule', {}).get('kind')} on {rule.get('slice')}"
        for rule in result.verdict.get("rules", [])
        if not rule.get("passed")
    ]
    return {
        "gate_id": result.gate_id,
        "candidate": {"id": result.candidate_eval_id, "label": result.candidate_label},
        "baseline": {"id": result.baseline_eval_id, "label": result.baseline_label},
        "spec_hash": result.spec_hash,
        "passed": result.passed,
        "failed_rules": failed,
        "verdict": SHIP if result.passed else DONT_SHIP,
    }


def decide_from_store(
    repos: Repositories,
    request: DecideRequest,
    settings: WorkspaceSettings,
    *,
    audit: AuditSummary | None = None,
    cost: Mapping[str, Any] | None = None,
    with_gate: bool = False,
) -> Decision:
    """Resolve the request's refs, read the proof from the store, and decide.

    `with_gate` (a refresh) adds the latest gate result of a candidate against the baseline
    under the decision's gate spec, when there is one.
    """
    symptoms = check_symptoms(request.symptoms)
    thresholds = load_thresholds(settings)
    baseline: EvalRecord | None = None
    chosen_by = "none found"
    if request.baseline is not None:
        baseline = repos.evals.eval_by_ref(request.baseline)
        chosen_by = "--baseline"
    training: VersionRecord | None = None
    if request.dataset is not None:
        training = repos.datasets.version(request.dataset)
    elif baseline is not None:
        training = repos.datasets.version_by_id(baseline.version_id)
    eval_version: VersionRecord | None = None
    eval_split: str | None = None
    if request.eval_set is not None:
        base, eval_split = parse_data_ref(request.eval_set)
        eval_version = repos.datasets.version(base)
    elif baseline is not None:
        eval_version = repos.datasets.version_by_id(baseline.version_id)
        eval_split = baseline.split
    searched = eval_version or training
    if baseline is None and searched is not None:
        baseline = _latest_base_eval(
            repos.evals, searched.version_id, eval_split if eval_version else None
        )
        if baseline is not None:
            chosen_by = f"the latest eval without an adapter on {searched.ref}"
    split = request.split
    if (
        training is not None
        and request.dataset is None
        and split is None
        and baseline is not None
        and baseline.split
    ):
        # Training data taken from the baseline's own version: only its train split can
        # train without meeting the eval set.
        split = "train"
    if split is not None and training is None:
        raise InputError("--split needs --dataset (or --baseline) to split", field="split")
    split_id = None if training is None else _split_plan(repos, training, split)
    spec, spec_source = _gate_spec(request)
    sources = EvidenceSources(
        training=training,
        split=split,
        split_id=split_id,
        baseline=baseline,
        baseline_chosen_by=chosen_by,
        eval_version=eval_version,
        eval_split=eval_split,
        eval_split_id=None
        if eval_version is None
        else _split_plan(repos, eval_version, eval_split),
        gate_spec=spec,
        gate_spec_source=spec_source,
        requests_per_day=request.requests_per_day,
        stable=request.stable,
        symptoms=symptoms,
        audit=audit,
    )
    checklist = build_checklist(repos.evals, repos.decisions, sources, thresholds)
    prefix = None
    if baseline is not None and baseline.prompt is not None:
        try:
            prefix = measure_prefix(repos.prompts.prompt(baseline.prompt))
        except NotFoundError:
            prefix = None  # the eval names a prompt this workspace does not hold
    assumptions = [item.as_json() for item in thresholds.all()]
    if split is not None and request.split is None:
        assumptions.append(
            {
                "name": "training_split",
                "value": split,
                "source": "default",
                "note": "the train split of the baseline's version; name --dataset to change",
            }
        )
    if prefix is not None:
        assumptions.append(
            {
                "name": "prefix_tokens",
                "value": prefix.tokens,
                "source": "measured",
                "note": prefix.method,
            }
        )
    gate = None
    candidate_id = None
    if with_gate and baseline is not None:
        result = _latest_gate(repos.evals, baseline, None if spec is None else spec.spec_hash)
        if result is not None:
            gate = _gate_json(result)
            candidate_id = result.candidate_eval_id
    links = {
        "dataset_version_id": None if training is None else training.version_id,
        "dataset": None if training is None else training.ref,
        "split": split,
        "baseline_eval_id": None if baseline is None else baseline.eval_id,
        "gate_spec_hash": None if spec is None else spec.spec_hash,
        "candidate_eval_id": candidate_id,
        "run_id": None,
    }
    return decide(
        symptoms,
        checklist,
        prefix=prefix,
        cost=cost,
        audit=audit,
        assumptions=assumptions,
        gate=gate,
        links=links,
    )


def request_with_spec(request: DecideRequest) -> DecideRequest:
    """The request with its gate spec file read in, so the record does not depend on it."""
    if request.gate_spec is not None or request.gate_spec_path is None:
        return request
    spec = load_gate_spec(Path(request.gate_spec_path))
    return DecideRequest(**{**_fields(request), "gate_spec": spec.as_json()})


def _fields(request: DecideRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in DecideRequest.__dataclass_fields__}


def dumps(payload: Any) -> str:
    return json.dumps(strict_json(payload), ensure_ascii=False, allow_nan=False)


def decide_with_audit(
    repos: Repositories,
    request: DecideRequest,
    settings: WorkspaceSettings,
    *,
    cost_for: Callable[[Mapping[str, Any]], Mapping[str, Any] | None] | None = None,
    with_gate: bool = False,
) -> Decision:
    """`decide_from_store` with the knowledge audit of the data the decision would train on
    (its split when it names one, the workspace's `[audit] volatile_terms`), so the
    `knowledge_audit` item is measured rather than missing; and with `cost_for(links)`, the
    cost of the evidence the first pass resolved (its baseline, its candidate). The CLI and
    the Decide screen both decide through this. The audit reads every row: it runs once."""
    first = decide_from_store(repos, request, settings, with_gate=with_gate)
    version_id = first.links.get("dataset_version_id")
    audit = None
    if version_id is not None:
        from core.knowledge_audit import audit_version

        audit = audit_version(
            repos.datasets,
            version_id,
            first.links.get("split"),
            settings.strings("audit", "volatile_terms"),
        )
    cost = None if cost_for is None else cost_for(first.links)
    if audit is None and cost is None:
        return first
    return decide_from_store(repos, request, settings, audit=audit, cost=cost, with_gate=with_gate)
