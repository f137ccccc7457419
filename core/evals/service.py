"""Importing, describing, comparing and gating evals: the orchestration behind `ftod eval`,
`ftod evals`, `ftod compare` and `ftod gate` (no click here, so the dashboard can call it too).

Every import is checked in full (data reference, label, scorers, the whole outputs file, and
every score) before the one transaction that stores it, so a bad input leaves nothing behind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from core.evals.gate import GateSpec, GateVerdict, evaluate_gate, load_gate_spec
from core.evals.outputs import (
    EvalExample,
    OutputsFile,
    eval_set,
    example_id,
    read_outputs,
)
from core.evals.scorers import DEFAULT_SCORER, Scorer, build_scorer, build_scorers
from core.evals.stats import Comparison, compare_scores
from store.datasets import DatasetRepository, VersionRecord
from store.errors import InputError, NotFoundError
from store.evals import (
    EvalOutput,
    EvalRecord,
    EvalRepository,
    GateResultRecord,
    ScorerSummary,
    ScoreToStore,
)

SPLIT_NAMES = ("train", "val", "test")
SOURCE_IMPORT = "import"
_NO_EXAMPLE: Mapping[str, Any] = MappingProxyType({})


# -- the eval set --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvalSet:
    version: VersionRecord
    split: str | None
    split_id: int | None
    examples: tuple[EvalExample, ...]

    @property
    def ref(self) -> str:
        return f"{self.version.ref}:{self.split}" if self.split else self.version.ref


def parse_data_ref(ref: str) -> tuple[str, str | None]:
    """'NAME@V:split' → ('NAME@V', 'split'); without ':split' the whole version."""
    text = ref.strip()
    base, colon, split = text.rpartition(":")
    if not colon:
        return text, None
    if split not in SPLIT_NAMES:
        raise InputError(
            f"{ref!r}: {split!r} is not a split; use NAME@VERSION or NAME@VERSION:SPLIT "
            f"with SPLIT one of {', '.join(SPLIT_NAMES)}"
        )
    if not base:
        raise InputError(f"{ref!r}: no dataset before ':{split}'")
    return base, split


def load_eval_set(datasets: DatasetRepository, evals: EvalRepository, ref: str) -> EvalSet:
    """The examples of NAME[@V][:split]; a split means that split of the latest split plan."""
    base, split = parse_data_ref(ref)
    version = datasets.version(base)
    split_id: int | None = None
    if split is not None:
        plans = datasets.splits(version.version_id)
        if not plans:
            raise NotFoundError(
                f"{version.ref} has no splits yet; run `ftod data split {version.ref}` first, "
                f"or evaluate the whole version ({version.ref})"
            )
        split_id = plans[-1].split_id
    rows = evals.eval_examples(version.version_id, split_id, split)
    found = EvalSet(version, split, split_id, tuple(eval_set(rows)))
    if not found.examples:
        raise InputError(f"{found.ref} has no examples to evaluate")
    return found


def _explainers(
    evals: EvalRepository, chosen: EvalSet
) -> tuple[Callable[[int], str], Callable[[str], str]]:
    """Why a line or an id is not in the eval set, read from the store only when asked."""
    version = chosen.version
    places: dict[int, tuple[bool, str | None]] = {}
    ids: dict[str, list[int]] = {}

    def explain_line(line: int) -> str:
        if not places:
            places.update(evals.line_places(version.version_id, chosen.split_id))
        if line not in places:
            span = f" (its rows are lines {min(places)}–{max(places)})" if places else ""
            return f"{version.ref} has no line {line}{span}"
        parsed, split = places[line]
        if not parsed:
            return (
                f"line {line} of {version.ref} is not a conversation (see `ftod data show "
                f"{version.ref}`)"
            )
        if chosen.split is not None:
            where = f"the {split} split" if split else "no split"
            return f"line {line} of {version.ref} is in {where}, not {chosen.split}"
        return f"line {line} is not in {chosen.ref}"

    def explain_id(identifier: str) -> str:
        if chosen.split is None:
            return f"no example of {version.ref} has metadata.id {identifier!r}"
        if not ids:
            for row in evals.eval_examples(version.version_id):
                key = example_id(row.metadata)
                if key is not None:
                    ids.setdefault(key, []).append(row.line)
        lines = ids.get(identifier)
        if not lines:
            return f"no example of {version.ref} has metadata.id {identifier!r}"
        return (
            f"it names line {lines[0]} of {version.ref}, which is not in the {chosen.split} split"
        )

    return explain_line, explain_id


# -- scoring -------------------------------------------------------------------------------------


def score_outputs(
    scorers: Sequence[Scorer],
    outputs: Sequence[EvalOutput],
    examples: Mapping[int, EvalExample],
) -> tuple[list[ScoreToStore], list[str]]:
    """Every output scored by every scorer, and a note per scorer that skipped some."""
    scores: list[ScoreToStore] = []
    notes: list[str] = []
    for scorer in scorers:
        no_reference = not_applicable = 0
        # Only custom scorers read the example; building its context for every output of
        # every built-in scorer would copy each conversation for nothing.
        wants_example = scorer.family == "custom"
        for output in outputs:
            example = examples[output.line]
            context = example.scorer_context() if wants_example else _NO_EXAMPLE
            value = scorer.score(output.output, example.reference, context)
            if value is None:
                if scorer.needs_reference and example.reference is None:
                    no_reference += 1
                else:
                    not_applicable += 1
            scores.append(ScoreToStore(output.line, scorer.name, value))
        total = len(outputs)
        if no_reference:
            notes.append(
                f"{scorer.name}: {no_reference} of {total} outputs not scored: their example "
                "has no reference (the conversation does not end with an assistant turn)"
            )
        if not_applicable:
            notes.append(
                f"{scorer.name}: {not_applicable} of {total} outputs not scored: the scorer "
                "does not apply to them"
            )
    return scores, notes


def _summaries(scorers: Sequence[Scorer], scores: Sequence[ScoreToStore]) -> list[ScorerSummary]:
    result = []
    for scorer in scorers:
        values = [s.score for s in scores if s.scorer == scorer.name]
        scored = [value for value in values if value is not None]
        mean = sum(scored) / len(scored) if scored else None
        result.append(ScorerSummary(scorer.name, len(scored), len(values) - len(scored), mean))
    return result


# -- import --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    record: EvalRecord
    examples: int
    """Examples in the eval set."""
    without_output: int
    keyed_by: tuple[str, ...]
    summaries: tuple[ScorerSummary, ...]

    def as_json(self) -> dict[str, Any]:
        payload = self.record.as_json()
        payload["examples"] = self.examples
        payload["without_output"] = self.without_output
        payload["keyed_by"] = list(self.keyed_by)
        payload["scores"] = [_summary_json(summary) for summary in self.summaries]
        return payload


def _summary_json(summary: ScorerSummary) -> dict[str, Any]:
    return {
        "scorer": summary.scorer,
        "mean": summary.mean,
        "scored": summary.scored,
        "skipped": summary.skipped,
    }


def check_label(evals: EvalRepository, label: str) -> str:
    """The label, stripped, if it is usable and free; InputError suggesting one otherwise."""
    text = label.strip()
    if not text:
        raise InputError("--label must not be empty")
    if any(not char.isprintable() for char in text):
        raise InputError(f"--label {label!r}: use printable characters on one line")
    if text.removeprefix("#").isdigit():
        # Evals are named by id or label on the command line; a numeric label would shadow
        # (or be shadowed by) another eval's id.
        raise InputError(f"--label {text!r}: a label must not be a number (ids are numbers)")
    taken = set(evals.labels())
    if text in taken:
        number = 2
        while f"{text}-{number}" in taken:
            number += 1
        raise InputError(
            f"an eval labelled {text!r} already exists; choose another label, "
            f"e.g. --label {text}-{number}"
        )
    return text


def import_eval(
    datasets: DatasetRepository,
    evals: EvalRepository,
    data_ref: str,
    outputs_path: Path,
    label: str,
    scorer_specs: Sequence[str | Mapping[str, Any]] | None = None,
    *,
    model: str | None = None,
    adapter: str | None = None,
    prompt: str | None = None,
    created_at: datetime | None = None,
) -> ImportOutcome:
    """Check everything, score every output with every scorer, then store it all at once."""
    label = check_label(evals, label)
    scorers = build_scorers(scorer_specs or None)
    chosen = load_eval_set(datasets, evals, data_ref)
    return store_outputs(
        evals,
        chosen,
        Path(outputs_path),
        label,
        scorers,
        source=SOURCE_IMPORT,
        model=model,
        adapter=adapter,
        prompt=prompt,
        created_at=created_at,
    )


def store_outputs(
    evals: EvalRepository,
    chosen: EvalSet,
    outputs_path: Path,
    label: str,
    scorers: Sequence[Scorer],
    *,
    source: str,
    model: str | None,
    adapter: str | None,
    prompt: str | None,
    extra_notes: Sequence[str] = (),
    created_at: datetime | None = None,
) -> ImportOutcome:
    """Read an outputs file against its eval set, score it, and store it in one transaction.

    The one path by which outputs become an eval, whether imported or generated by ftod,
    so both compare and gate alike.
    """
    explain_line, explain_id = _explainers(evals, chosen)
    parsed: OutputsFile = read_outputs(
        outputs_path,
        chosen.examples,
        set_name=chosen.ref,
        explain_line=explain_line,
        explain_id=explain_id,
    )
    by_line = {example.line: example for example in chosen.examples}
    scores, notes = score_outputs(scorers, parsed.outputs, by_line)
    if parsed.without_output:
        notes.insert(
            0,
            f"{parsed.without_output} of {len(chosen.examples)} examples of {chosen.ref} have "
            "no output and are not scored",
        )
    notes.extend(extra_notes)
    record = evals.add_eval(
        label=label,
        version_id=chosen.version.version_id,
        split=chosen.split,
        split_id=chosen.split_id,
        source=source,
        scorers=[scorer.spec() for scorer in scorers],
        outputs=parsed.outputs,
        scores=scores,
        outputs_path=str(parsed.path.resolve()),
        outputs_sha256=parsed.sha256,
        model=model,
        adapter=adapter,
        prompt=prompt,
        notes=notes,
        created_at=created_at,
    )
    return ImportOutcome(
        record=record,
        examples=len(chosen.examples),
        without_output=parsed.without_output,
        keyed_by=parsed.keyed_by,
        summaries=tuple(_summaries(scorers, scores)),
    )


# -- show ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvalDetails:
    record: EvalRecord
    summaries: tuple[ScorerSummary, ...]
    slices: tuple[tuple[str | None, int], ...]
    """(slice, outputs) sorted by name; None gathers outputs whose example has no slice."""
    gate_results: tuple[GateResultRecord, ...]

    def as_json(self) -> dict[str, Any]:
        payload = self.record.as_json()
        payload["scores"] = [_summary_json(summary) for summary in self.summaries]
        payload["slices"] = [{"slice": name, "n": count} for name, count in self.slices]
        payload["gate_results"] = [result.as_json() for result in self.gate_results]
        return payload


def describe_eval(evals: EvalRepository, ref: str) -> EvalDetails:
    record = evals.eval_by_ref(ref)
    slice_of = {
        example.line: example.slice for example in eval_set(evals.eval_examples(record.version_id))
    }
    counts = Counter(slice_of.get(output.line) for output in evals.outputs(record.eval_id))
    ordered = sorted(counts.items(), key=lambda item: (item[0] is None, item[0] or ""))
    return EvalDetails(
        record=record,
        summaries=tuple(evals.score_summaries(record.eval_id)),
        slices=tuple(ordered),
        gate_results=tuple(evals.gate_results(record.eval_id)),
    )


# -- compare -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComparisonOutcome:
    baseline: EvalRecord
    candidate: EvalRecord
    comparison: Comparison


def _stored_spec(record: EvalRecord, name: str) -> dict[str, Any] | None:
    for spec, stored_name in zip(record.scorers, record.scorer_names, strict=True):
        if stored_name == name:
            return spec
    return None


def _same_version(baseline: EvalRecord, candidate: EvalRecord) -> None:
    if baseline.version_id != candidate.version_id:
        raise InputError(
            f"evals {baseline.label!r} and {candidate.label!r} are on different dataset "
            f"versions ({baseline.data_ref} and {candidate.data_ref}); only evals of one "
            "version share examples to compare"
        )


def resolve_scorer(baseline: EvalRecord, candidate: EvalRecord, requested: str | None) -> Scorer:
    """The scorer to compare with.

    Unnamed: `exact` when both evals stored it, else their first common scorer, else `exact`.
    A bare name that an eval stored means that eval's stored settings (they must agree when
    both stored it); anything else is built as a spec and computed where it was not stored.
    """
    if requested is None:
        common = [name for name in baseline.scorer_names if name in candidate.scorer_names]
        requested = DEFAULT_SCORER if DEFAULT_SCORER in common or not common else common[0]
    name = requested.strip()
    if ":" not in name:
        spec_a, spec_b = _stored_spec(baseline, name), _stored_spec(candidate, name)
        if spec_a is not None and spec_b is not None and spec_a != spec_b:
            raise InputError(
                f"scorer {name!r} has different settings in {baseline.label!r} ({spec_a}) and "
                f"{candidate.label!r} ({spec_b}); pass a full spec with --scorer to score both "
                "the same way"
            )
        stored = spec_a if spec_a is not None else spec_b
        if stored is not None:
            return build_scorer(stored)
    try:
        return build_scorer(name)
    except InputError as error:
        known = sorted({*baseline.scorer_names, *candidate.scorer_names})
        raise InputError(
            f"{error.message} (the evals stored: {', '.join(known) or 'none'})"
        ) from error


class _Scoring:
    """Scores of evals of one dataset version under any scorer: stored ones are read, the
    rest computed from the stored outputs and the dataset's references."""

    def __init__(self, evals: EvalRepository, version_id: int) -> None:
        self.evals = evals
        self.version_id = version_id
        self._examples: dict[int, EvalExample] | None = None

    @property
    def examples(self) -> dict[int, EvalExample]:
        if self._examples is None:
            rows = self.evals.eval_examples(self.version_id)
            self._examples = {example.line: example for example in eval_set(rows)}
        return self._examples

    def scores(self, record: EvalRecord, scorer: Scorer) -> dict[int, float | None]:
        if _stored_spec(record, scorer.name) == scorer.spec():
            return self.evals.scores(record.eval_id, scorer.name)
        outputs = [o for o in self.evals.outputs(record.eval_id) if o.line in self.examples]
        computed, _notes = score_outputs([scorer], outputs, self.examples)
        return {score.line: score.score for score in computed}

    def slices(self) -> dict[int, str | None]:
        return {line: example.slice for line, example in self.examples.items()}


def _has_pairs(a: Mapping[int, float | None], b: Mapping[int, float | None]) -> bool:
    return any(value is not None and b.get(line) is not None for line, value in a.items())


def compare_evals(
    evals: EvalRepository,
    ref_a: str,
    ref_b: str,
    scorer: str | None = None,
) -> ComparisonOutcome:
    """Baseline A against candidate B, paired by example line, per slice and overall."""
    baseline, candidate = evals.eval_by_ref(ref_a), evals.eval_by_ref(ref_b)
    _same_version(baseline, candidate)
    chosen = resolve_scorer(baseline, candidate, scorer)
    scoring = _Scoring(evals, baseline.version_id)
    comparison = compare_scores(
        scoring.scores(baseline, chosen),
        scoring.scores(candidate, chosen),
        scoring.slices(),
        chosen.kind,
        scorer=chosen.name,
    )
    return ComparisonOutcome(baseline, candidate, comparison)


# -- gate ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateOutcome:
    baseline: EvalRecord
    candidate: EvalRecord
    spec: GateSpec
    verdict: GateVerdict
    gate_id: int

    def as_json(self) -> dict[str, Any]:
        payload = self.verdict.as_json()
        payload["gate_id"] = self.gate_id
        payload["baseline"] = {"id": self.baseline.eval_id, "label": self.baseline.label}
        payload["candidate"] = {"id": self.candidate.eval_id, "label": self.candidate.label}
        return payload


def run_gate(
    evals: EvalRepository,
    spec_path: Path,
    baseline_ref: str,
    candidate_ref: str,
    *,
    created_at: datetime | None = None,
) -> GateOutcome:
    """Apply a gate spec to baseline vs candidate and store the verdict with the candidate.

    A scorer under which no example is scored by both evals gets no comparison, so its rules
    FAIL with that as their evidence (the gate never passes a slice it did not see).
    """
    spec = load_gate_spec(spec_path)
    baseline, candidate = evals.eval_by_ref(baseline_ref), evals.eval_by_ref(candidate_ref)
    _same_version(baseline, candidate)
    scoring = _Scoring(evals, baseline.version_id)
    comparisons: dict[str, Comparison] = {}
    for name in spec.scorers:
        scorer = resolve_scorer(baseline, candidate, name)
        a, b = scoring.scores(baseline, scorer), scoring.scores(candidate, scorer)
        if _has_pairs(a, b):
            # Keyed by the name the rules use, which for an alias spelling ("normalized")
            # differs from the scorer's own name.
            comparisons[name] = compare_scores(
                a, b, scoring.slices(), scorer.kind, scorer=scorer.name
            )
    verdict = evaluate_gate(spec, comparisons)
    gate_id = evals.add_gate_result(
        baseline_eval_id=baseline.eval_id,
        candidate_eval_id=candidate.eval_id,
        spec_hash=verdict.spec_hash,
        spec=spec.as_json(),
        passed=verdict.passed,
        verdict=verdict.as_json(),
        created_at=created_at,
    )
    return GateOutcome(baseline, candidate, spec, verdict, gate_id)
