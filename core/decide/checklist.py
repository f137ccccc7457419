"""The minimum proof before training, read from the store: eight items, each `pass`, `fail` or
`missing`, each with the numbers and store objects it stands on.

Nothing here is typed in by the user except the `value` answers (requests per day, whether the
behaviour is stable), which are the user's to give. Thresholds come from `[decide]` in the
workspace settings, and every item shows the value it used and where that value came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from core.evals.gate import NON_INFERIORITY_KINDS, TARGET, GateSpec
from core.settings import WorkspaceSettings
from store.datasets import VersionRecord
from store.decisions import DecisionRepository
from store.evals import EvalRecord, EvalRepository

Status = Literal["pass", "fail", "missing"]
ITEM_IDS: tuple[str, ...] = (
    "baseline_eval",
    "baseline_falls_short",
    "enough_examples",
    "data_clean",
    "knowledge_audit",
    "eval_held_out",
    "gate_spec",
    "value",
)
HELD_OUT_SPLITS = ("val", "test")
EXAMPLE_LINES = 5

# Words in a slice or scorer name that tie it to a behaviour symptom: "format" slices and
# json/regex scorers answer for `format`, label scorers for classification, and so on.
SYMPTOM_WORDS: Mapping[str, tuple[str, ...]] = {
    "format": ("format", "json", "schema", "regex", "structure"),
    "tone": ("tone", "style", "voice"),
    "domain_phrasing": ("domain", "phrasing", "terminology"),
    "classification_boundary": ("label", "class", "exact", "category"),
    "tool_discipline": ("tool", "function", "call"),
    "verbose": ("length", "verbose", "concise", "brevity"),
}


class AuditSummary(Protocol):
    """What the knowledge audit (`core.knowledge_audit.audit_version`) hands the desk."""

    @property
    def assistant_turns(self) -> int: ...

    @property
    def turns_with_volatile_facts(self) -> int: ...

    @property
    def share(self) -> float: ...

    def as_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Assumption:
    name: str
    value: float | str
    source: Literal["settings", "flag", "default", "measured"]
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"name": self.name, "value": self.value, "source": self.source}
        if self.note:
            payload["note"] = self.note
        return payload


@dataclass(frozen=True, slots=True)
class Thresholds:
    enough_examples: Assumption
    prompt_enough_share: Assumption
    volatile_share: Assumption
    pass_score: Assumption

    def all(self) -> tuple[Assumption, ...]:
        return (
            self.enough_examples,
            self.prompt_enough_share,
            self.volatile_share,
            self.pass_score,
        )


def _setting(
    settings: WorkspaceSettings, key: str, default: float, *, low: float, high: float, note: str
) -> Assumption:
    value = settings.number("decide", key, default, low=low, high=high)
    source: Literal["settings", "default"] = (
        "settings" if settings.is_set("decide", key) else "default"
    )
    return Assumption(f"decide.{key}", value, source, note)


def load_thresholds(settings: WorkspaceSettings) -> Thresholds:
    return Thresholds(
        enough_examples=_setting(
            settings,
            "enough_examples",
            200,
            low=1,
            high=10_000_000,
            note="clean examples needed; the field's guidance runs from 50 to 500",
        ),
        prompt_enough_share=_setting(
            settings,
            "prompt_enough_share",
            0.9,
            low=0,
            high=1,
            note="the baseline passing this share of the tied cases means the prompt is enough",
        ),
        volatile_share=_setting(
            settings,
            "volatile_share",
            0.05,
            low=0,
            high=1,
            note="most share of assistant turns carrying volatile facts",
        ),
        pass_score=_setting(
            settings,
            "pass_score",
            0.5,
            low=0,
            high=1,
            note="a baseline case passes when its score is at least this",
        ),
    )


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    id: str
    status: Status
    evidence: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "evidence": dict(self.evidence)}


@dataclass(frozen=True, slots=True)
class EvidenceSources:
    """What the checklist reads, resolved from the user's refs by the caller."""

    training: VersionRecord | None
    split: str | None
    split_id: int | None
    baseline: EvalRecord | None
    baseline_chosen_by: str
    eval_version: VersionRecord | None
    eval_split: str | None
    eval_split_id: int | None
    gate_spec: GateSpec | None
    gate_spec_source: str | None
    requests_per_day: float | None
    stable: bool | None
    symptoms: tuple[str, ...]
    audit: AuditSummary | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def _eval_ref(record: EvalRecord) -> dict[str, Any]:
    return {"id": record.eval_id, "label": record.label, "data": record.data_ref}


def _baseline_eval(sources: EvidenceSources) -> ChecklistItem:
    record = sources.baseline
    if record is None:
        return ChecklistItem(
            "baseline_eval",
            "missing",
            {"reason": "no eval of the base model on this data", "chosen_by": "none found"},
        )
    evidence: dict[str, Any] = {
        "eval": _eval_ref(record),
        "model": record.model,
        "prompt": record.prompt,
        "adapter": record.adapter,
        "chosen_by": sources.baseline_chosen_by,
    }
    if record.adapter is not None:
        evidence["reason"] = "this eval ran with an adapter: it is a candidate, not the base model"
        return ChecklistItem("baseline_eval", "fail", evidence)
    if record.prompt is None:
        evidence["reason"] = (
            "the eval names no prompt, so it cannot stand for the base model with its best "
            "prompt; run it with `ftod eval run --prompt NAME`"
        )
        return ChecklistItem("baseline_eval", "fail", evidence)
    return ChecklistItem("baseline_eval", "pass", evidence)


def _tied(names: Sequence[str], symptoms: Sequence[str]) -> list[str]:
    words = {word for symptom in symptoms for word in SYMPTOM_WORDS.get(symptom, ())}
    return [name for name in names if any(word in name.lower() for word in words)]


def _slice_scores(
    evals: EvalRepository, record: EvalRecord, scorer: str, pass_score: float
) -> dict[str, dict[str, Any]]:
    slice_of = {row.line: row.slice for row in evals.eval_examples(record.version_id)}
    per_slice: dict[str, dict[str, Any]] = {}
    for line, score in sorted(evals.scores(record.eval_id, scorer).items()):
        if score is None:
            continue
        name = slice_of.get(line) or "(no slice)"
        entry = per_slice.setdefault(name, {"n": 0, "total": 0.0, "passed": 0, "failed": []})
        entry["n"] += 1
        entry["total"] += score
        if score >= pass_score:
            entry["passed"] += 1
        else:
            entry["failed"].append(line)
    return per_slice


def _falls_short(
    evals: EvalRepository, sources: EvidenceSources, thresholds: Thresholds
) -> ChecklistItem:
    record = sources.baseline
    if record is None or not record.scorer_names:
        return ChecklistItem(
            "baseline_falls_short", "missing", {"reason": "no scored baseline eval"}
        )
    tied_scorers = _tied(record.scorer_names, sources.symptoms)
    scorer = tied_scorers[0] if tied_scorers else record.scorer_names[0]
    pass_score = float(thresholds.pass_score.value)
    per_slice = _slice_scores(evals, record, scorer, pass_score)
    tied_slices = _tied(sorted(per_slice), sources.symptoms)
    chosen = tied_slices or sorted(per_slice)
    n = sum(per_slice[name]["n"] for name in chosen)
    passed = sum(per_slice[name]["passed"] for name in chosen)
    failed_lines = sorted(line for name in chosen for line in per_slice[name]["failed"])
    share_needed = float(thresholds.prompt_enough_share.value)
    evidence: dict[str, Any] = {
        "eval": _eval_ref(record),
        "scorer": scorer,
        "scorer_tied_to_symptom": bool(tied_scorers),
        "slices": chosen,
        "slices_tied_to_symptom": bool(tied_slices),
        "per_slice": [
            {
                "slice": name,
                "n": per_slice[name]["n"],
                "mean": round(per_slice[name]["total"] / per_slice[name]["n"], 6),
                "passed": per_slice[name]["passed"],
            }
            for name in sorted(per_slice)
        ],
        "cases": n,
        "passed": passed,
        "failures": len(failed_lines),
        "example_lines": failed_lines[:EXAMPLE_LINES],
        "pass_score": pass_score,
        "prompt_enough_share": share_needed,
    }
    if n == 0:
        evidence["reason"] = f"the baseline has no {scorer} scores on these slices"
        return ChecklistItem("baseline_falls_short", "missing", evidence)
    share = passed / n
    evidence["pass_share"] = round(share, 6)
    if share >= share_needed:
        evidence["reason"] = (
            f"the baseline already passes {share:.0%} of the cases (≥ {share_needed:.0%}): "
            "the prompt is enough"
        )
        return ChecklistItem("baseline_falls_short", "fail", evidence)
    if len(failed_lines) < 2:
        evidence["reason"] = "one failure is not a repeated pattern"
        return ChecklistItem("baseline_falls_short", "fail", evidence)
    evidence["reason"] = (
        f"the baseline fails {len(failed_lines)} of {n} cases under {scorer} "
        f"({share:.0%} pass, below {share_needed:.0%})"
    )
    return ChecklistItem("baseline_falls_short", "pass", evidence)


def _version_ref(record: VersionRecord, split: str | None) -> dict[str, Any]:
    return {
        "version_id": record.version_id,
        "ref": record.ref,
        "split": split,
        "sha256": record.sha256,
    }


def _enough(
    decisions: DecisionRepository, sources: EvidenceSources, thresholds: Thresholds
) -> ChecklistItem:
    version = sources.training
    if version is None:
        return ChecklistItem("enough_examples", "missing", {"reason": "no dataset named"})
    count = decisions.clean_count(version.version_id, sources.split_id, sources.split)
    needed = int(thresholds.enough_examples.value)
    evidence = {
        "dataset": _version_ref(version, sources.split),
        "valid": count.valid,
        "with_errors": count.with_errors,
        "duplicate_copies": count.duplicate_copies,
        "clean": count.clean,
        "threshold": needed,
        "threshold_source": thresholds.enough_examples.source,
    }
    return ChecklistItem("enough_examples", "pass" if count.clean >= needed else "fail", evidence)


def _clean(decisions: DecisionRepository, sources: EvidenceSources) -> ChecklistItem:
    version = sources.training
    if version is None:
        return ChecklistItem("data_clean", "missing", {"reason": "no dataset named"})
    by_check = decisions.error_lines_by_check(version.version_id, sources.split_id, sources.split)
    evidence = {
        "dataset": _version_ref(version, sources.split),
        "errors_by_check": [
            {"check": check, "rows": len(lines), "example_lines": lines[:EXAMPLE_LINES]}
            for check, lines in by_check.items()
        ],
        "rows_with_errors": len({line for lines in by_check.values() for line in lines}),
    }
    return ChecklistItem("data_clean", "fail" if by_check else "pass", evidence)


def _audit(sources: EvidenceSources, thresholds: Thresholds) -> ChecklistItem:
    limit = float(thresholds.volatile_share.value)
    audit = sources.audit
    if audit is None:
        return ChecklistItem(
            "knowledge_audit",
            "missing",
            {"reason": "the knowledge audit was not run", "threshold": limit},
        )
    evidence: dict[str, Any] = {
        "assistant_turns": audit.assistant_turns,
        "turns_with_volatile_facts": audit.turns_with_volatile_facts,
        "share": audit.share,
        "threshold": limit,
        "threshold_source": thresholds.volatile_share.source,
    }
    if audit.share > limit:
        evidence["reason"] = (
            f"{audit.share:.1%} of assistant turns carry volatile facts (> {limit:.1%}): a "
            "fine-tune would freeze them into the weights; move them into retrieval or the "
            "prompt and template them out of the answers"
        )
    return ChecklistItem("knowledge_audit", "fail" if audit.share > limit else "pass", evidence)


def _held_out(decisions: DecisionRepository, sources: EvidenceSources) -> ChecklistItem:
    eval_version, training = sources.eval_version, sources.training
    if eval_version is None or training is None:
        return ChecklistItem(
            "eval_held_out", "missing", {"reason": "no eval set and training data to compare"}
        )
    evidence: dict[str, Any] = {
        "eval_set": _version_ref(eval_version, sources.eval_split),
        "training": _version_ref(training, sources.split),
    }
    same = eval_version.version_id == training.version_id
    if same and sources.eval_split not in HELD_OUT_SPLITS:
        evidence["reason"] = (
            "the eval set is the training data itself"
            if sources.eval_split is None
            else f"the eval set is the {sources.eval_split} split, which trains"
        )
        return ChecklistItem("eval_held_out", "fail", evidence)
    if same and sources.split is None:
        evidence["reason"] = (
            f"training on the whole version trains on its {sources.eval_split} split too; "
            "name --split train"
        )
        return ChecklistItem("eval_held_out", "fail", evidence)
    if same and sources.split == sources.eval_split:
        evidence["reason"] = "the eval split is the training split"
        return ChecklistItem("eval_held_out", "fail", evidence)
    if same:
        # Within one version, the split plan's own leakage findings are the evidence.
        leaks = [
            leak
            for leak in decisions.leakage_findings(training.version_id)
            if leak["split_id"] is not None
        ]
        evidence["leakage_findings"] = len(leaks)
        shared = sorted({line for leak in leaks for line in leak["lines"]})
    else:
        shared = decisions.shared_rows(
            (training.version_id, sources.split_id, sources.split),
            (eval_version.version_id, sources.eval_split_id, sources.eval_split),
        )
        evidence["rows_also_in_training"] = len(shared)
    evidence["leakage_example_lines"] = shared[:EXAMPLE_LINES]
    if shared:
        evidence["reason"] = f"{len(shared)} eval rows also appear in the training data"
        return ChecklistItem("eval_held_out", "fail", evidence)
    return ChecklistItem("eval_held_out", "pass", evidence)


def _gate(sources: EvidenceSources) -> ChecklistItem:
    spec = sources.gate_spec
    if spec is None:
        return ChecklistItem("gate_spec", "missing", {"reason": "no gate spec named"})
    targets = sorted({rule.slice for rule in spec.rules if rule.kind == TARGET})
    guards = sorted({rule.slice for rule in spec.rules if rule.kind in NON_INFERIORITY_KINDS})
    evidence: dict[str, Any] = {
        "spec_hash": spec.spec_hash,
        "source": sources.gate_spec_source,
        "target_slices": targets,
        "regression_slices": guards,
    }
    if not targets or not guards:
        evidence["reason"] = "a gate spec needs at least one target and one regression rule"
        return ChecklistItem("gate_spec", "fail", evidence)
    return ChecklistItem("gate_spec", "pass", evidence)


def _value(sources: EvidenceSources) -> ChecklistItem:
    evidence: dict[str, Any] = {
        "requests_per_day": sources.requests_per_day,
        "stable": sources.stable,
    }
    if sources.requests_per_day is None or sources.stable is None:
        evidence["reason"] = "answer --requests-per-day N and --stable or --unstable"
        return ChecklistItem("value", "missing", evidence)
    if not sources.stable:
        evidence["reason"] = "a behaviour that changes often belongs in the prompt"
        return ChecklistItem("value", "fail", evidence)
    if sources.requests_per_day <= 0:
        evidence["reason"] = "no requests: nothing to gain from a fine-tune"
        return ChecklistItem("value", "fail", evidence)
    return ChecklistItem("value", "pass", evidence)


def build_checklist(
    evals: EvalRepository,
    decisions: DecisionRepository,
    sources: EvidenceSources,
    thresholds: Thresholds,
) -> tuple[ChecklistItem, ...]:
    """The eight items in their contract order."""
    return (
        _baseline_eval(sources),
        _falls_short(evals, sources, thresholds),
        _enough(decisions, sources, thresholds),
        _clean(decisions, sources),
        _audit(sources, thresholds),
        _held_out(decisions, sources),
        _gate(sources),
        _value(sources),
    )
