"""The review room's logic: a queue of examples where a person judges baseline against
candidate, word-level diffs, agreement between reviewers (Cohen's κ) and the export of verdicts
as a JSONL dataset.
"""

from __future__ import annotations

import difflib
import getpass
import itertools
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from core.evals.judge import JudgeView, judge_view
from core.evals.outputs import EvalExample
from core.evals.service import _same_version, _Scoring, resolve_scorer
from core.evals.stats import Comparison, ScoreKind, compare_scores
from core.evals.stats import cohens_kappa as cohens_kappa  # moved to stats; still importable here
from core.safefiles import atomic_replace
from store.errors import InputError
from store.evals import EvalRecord, EvalRepository, GateResultRecord
from store.judges import JudgeRepository
from store.reviews import ReviewRecord, ReviewRepository

REVIEWER_ENV = "FTOD_REVIEWER"

Category = Literal[
    "improvement", "regression", "both_pass", "both_fail", "disagreement", "unscored"
]
QueueFilter = Literal["all", "disagreements", "regressions", "improvements"]
FILTERS: tuple[QueueFilter, ...] = ("all", "disagreements", "regressions", "improvements")


def current_reviewer() -> str:
    """`FTOD_REVIEWER` when set, else the login name."""
    name = os.environ.get(REVIEWER_ENV, "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True, slots=True)
class ReviewItem:
    line: int
    slice: str | None
    messages: tuple[Mapping[str, Any], ...]
    """The input conversation: the example without its final (reference) assistant turn."""
    reference: str | None
    baseline_output: str
    candidate_output: str
    score_a: float | None
    score_b: float | None
    category: Category

    def matches(self, text: str) -> bool:
        """Whether `text` (case-insensitive) occurs in the input or either output."""
        needle = text.casefold()
        haystacks = [self.baseline_output, self.candidate_output, self.reference or ""]
        haystacks += [_message_text(message) for message in self.messages]
        return any(needle in hay.casefold() for hay in haystacks)


@dataclass(frozen=True, slots=True)
class ReviewPair:
    """Every example both evals have an output for, under one scorer."""

    baseline: EvalRecord
    candidate: EvalRecord
    scorer: str
    kind: ScoreKind
    items: tuple[ReviewItem, ...]

    @property
    def slices(self) -> tuple[str, ...]:
        return tuple(sorted({item.slice for item in self.items if item.slice is not None}))


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part if isinstance(part, str) else str(part.get("text") or "")
            for part in content
            if isinstance(part, str | dict)
        )
    return "" if content is None else json.dumps(content)


def categorize(score_a: float | None, score_b: float | None, threshold: float = 0.5) -> Category:
    """improvement / regression when the scores differ; both_pass / both_fail when they are
    equal (a pass is a score ≥ `threshold`); disagreement when only one side was scored."""
    if score_a is None and score_b is None:
        return "unscored"
    if score_a is None or score_b is None:
        return "disagreement"
    if score_b > score_a:
        return "improvement"
    if score_b < score_a:
        return "regression"
    return "both_pass" if score_a >= threshold else "both_fail"


def _input_of(example: EvalExample) -> tuple[Mapping[str, Any], ...]:
    if example.reference is not None and example.messages:
        return example.messages[:-1]
    return example.messages


def load_pair(
    evals: EvalRepository, baseline_ref: str, candidate_ref: str, scorer: str | None = None
) -> ReviewPair:
    """Baseline and candidate outputs side by side, paired by line, with one scorer's scores."""
    return _pair_of(
        evals, evals.eval_by_ref(baseline_ref), evals.eval_by_ref(candidate_ref), scorer
    )


def _pair_of(
    evals: EvalRepository, baseline: EvalRecord, candidate: EvalRecord, scorer: str | None
) -> ReviewPair:
    if baseline.eval_id == candidate.eval_id:
        raise InputError(f"baseline and candidate are the same eval ({baseline.label!r})")
    _same_version(baseline, candidate)
    chosen = resolve_scorer(baseline, candidate, scorer)
    scoring = _Scoring(evals, baseline.version_id)
    examples = scoring.examples
    scores_a = scoring.scores(baseline, chosen)
    scores_b = scoring.scores(candidate, chosen)
    outputs_b = {output.line: output.output for output in evals.outputs(candidate.eval_id)}
    items = []
    for output in evals.outputs(baseline.eval_id):
        example = examples.get(output.line)
        if example is None or output.line not in outputs_b:
            continue
        score_a, score_b = scores_a.get(output.line), scores_b.get(output.line)
        items.append(
            ReviewItem(
                line=output.line,
                slice=example.slice,
                messages=_input_of(example),
                reference=example.reference,
                baseline_output=output.output,
                candidate_output=outputs_b[output.line],
                score_a=score_a,
                score_b=score_b,
                category=categorize(score_a, score_b),
            )
        )
    return ReviewPair(baseline, candidate, chosen.name, chosen.kind, tuple(items))


def filter_queue(
    items: Iterable[ReviewItem],
    queue_filter: QueueFilter = "all",
    slice_name: str | None = None,
    search: str | None = None,
) -> tuple[ReviewItem, ...]:
    """The items a filter keeps: disagreements are items whose scores differ."""
    if queue_filter not in FILTERS:
        raise InputError(f"filter must be one of {', '.join(FILTERS)}, not {queue_filter!r}")
    kept = []
    for item in items:
        if queue_filter == "disagreements" and item.score_a == item.score_b:
            continue
        if queue_filter == "regressions" and item.category != "regression":
            continue
        if queue_filter == "improvements" and item.category != "improvement":
            continue
        if slice_name is not None and item.slice != slice_name:
            continue
        if search and not item.matches(search):
            continue
        kept.append(item)
    return tuple(kept)


def build_queue(
    evals: EvalRepository,
    baseline_ref: str,
    candidate_ref: str,
    scorer: str | None = None,
    *,
    queue_filter: QueueFilter = "all",
    slice_name: str | None = None,
    search: str | None = None,
) -> tuple[ReviewItem, ...]:
    """The review queue of a pair under one scorer, filtered, in line order."""
    pair = load_pair(evals, baseline_ref, candidate_ref, scorer)
    return filter_queue(pair.items, queue_filter, slice_name, search)


def resume_index(queue: Sequence[ReviewItem], reviewed: Iterable[int], start: int = 0) -> int:
    """The first item at or after `start` (wrapping) whose line is not in `reviewed`;
    `start` itself (clamped) when every item was reviewed."""
    if not queue:
        return 0
    done = set(reviewed)
    size = len(queue)
    start = min(max(start, 0), size - 1)
    for offset in range(size):
        index = (start + offset) % size
        if queue[index].line not in done:
            return index
    return start


# -- word diff -----------------------------------------------------------------------------------

DiffTag = Literal["equal", "replace", "delete", "insert"]
_TOKEN = re.compile(r"\s*\S+\s*")


@dataclass(frozen=True, slots=True)
class DiffOp:
    """One difflib opcode over words; the texts keep their whitespace, so joining every
    op's `a_text` gives back `a` (and `b_text`, `b`)."""

    tag: DiffTag
    a_text: str
    b_text: str


def _words(text: str) -> list[str]:
    tokens = _TOKEN.findall(text)
    if not tokens:
        return [text] if text else []
    tail = text[sum(len(token) for token in tokens) :]
    if tail:
        tokens[-1] += tail
    return tokens


def word_diff(a: str, b: str) -> tuple[DiffOp, ...]:
    """Word-level opcodes turning `a` into `b` (difflib, words compared without whitespace)."""
    words_a, words_b = _words(a), _words(b)
    matcher = difflib.SequenceMatcher(
        None, [w.strip() for w in words_a], [w.strip() for w in words_b], autojunk=False
    )
    ops = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        ops.append(DiffOp(tag, "".join(words_a[i1:i2]), "".join(words_b[j1:j2])))
    return tuple(ops)


# -- which pair the review room opens ------------------------------------------------------------

PairBasis = Literal["chosen", "gate", "earlier"]
NoPairReason = Literal[
    "unknown_candidate", "chosen_is_candidate", "chosen_other_version", "no_baseline"
]


@dataclass(frozen=True, slots=True)
class PairChoice:
    """The baseline `candidate` is reviewed against, and on what grounds it was chosen."""

    baseline: EvalRecord
    candidate: EvalRecord
    basis: PairBasis
    """"chosen" by the person, the baseline of a "gate" result, or the latest "earlier" eval."""
    gate_id: int | None = None
    """The gate result that named the baseline (basis "gate")."""


@dataclass(frozen=True, slots=True)
class NoPairChoice:
    """Why no pair could be chosen; each interface words it for its own keys and flags."""

    reason: NoPairReason
    candidate: EvalRecord | None
    chosen: EvalRecord | None = None
    """The baseline the person chose, when that choice is what failed."""


def choose_review_pair(
    records: Iterable[EvalRecord],
    candidate_id: int,
    candidate_gates: Sequence[GateResultRecord],
    chosen_baseline_id: int | None = None,
) -> PairChoice | NoPairChoice:
    """The one rule for the pair the review room opens (the Evals screen and `ftod review`).

    The baseline is the one the person chose (the Evals screen's `b` mark); else the
    baseline of the candidate's latest gate result on the same dataset version; else the
    latest earlier eval (by id) of that version. The room compares evals of one dataset
    version only. `candidate_gates` are the candidate's gate results, oldest first (none
    when not read yet); a chosen id that is not among `records` counts as no choice.
    """
    by_id = {record.eval_id: record for record in records}
    candidate = by_id.get(candidate_id)
    if candidate is None:
        return NoPairChoice("unknown_candidate", None)
    if chosen_baseline_id is not None and chosen_baseline_id in by_id:
        chosen = by_id[chosen_baseline_id]
        if chosen_baseline_id == candidate_id:
            return NoPairChoice("chosen_is_candidate", candidate, chosen)
        if chosen.version_id != candidate.version_id:
            return NoPairChoice("chosen_other_version", candidate, chosen)
        return PairChoice(chosen, candidate, "chosen")
    for gate in reversed(candidate_gates):
        gated = by_id.get(gate.baseline_eval_id)
        if (
            gated is not None
            and gated.eval_id != candidate_id
            and gated.version_id == candidate.version_id
        ):
            return PairChoice(gated, candidate, "gate", gate.gate_id)
    earlier = [
        record
        for record in by_id.values()
        if record.version_id == candidate.version_id and record.eval_id < candidate_id
    ]
    if earlier:
        return PairChoice(max(earlier, key=lambda record: record.eval_id), candidate, "earlier")
    return NoPairChoice("no_baseline", candidate)


# -- agreement -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Agreement:
    first: str
    second: str
    common: int
    """Examples both reviewers judged."""
    kappa: float | None


def reviewer_agreement(reviews: Iterable[ReviewRecord]) -> tuple[Agreement, ...]:
    """κ for every pair of reviewers that judged at least one example in common."""
    by_reviewer: dict[str, dict[int, str]] = {}
    for review in reviews:
        by_reviewer.setdefault(review.reviewer, {})[review.line] = review.verdict
    result = []
    for first, second in itertools.combinations(sorted(by_reviewer), 2):
        common = sorted(by_reviewer[first].keys() & by_reviewer[second].keys())
        if not common:
            continue
        pairs = [(by_reviewer[first][line], by_reviewer[second][line]) for line in common]
        result.append(Agreement(first, second, len(common), cohens_kappa(pairs)))
    return tuple(result)


# -- export --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportOutcome:
    rows: tuple[dict[str, Any], ...]
    left_out: int
    """Verdicts "both wrong" without a corrected answer: there is no answer to train on."""


def _final_answer(review: ReviewRecord, item: ReviewItem) -> str | None:
    if review.corrected is not None and review.corrected.strip():
        return review.corrected
    if review.verdict == "baseline":
        return item.baseline_output
    if review.verdict in ("candidate", "tie"):
        return item.candidate_output
    return None


def export_reviews(
    evals: EvalRepository,
    reviews: ReviewRepository,
    baseline_ref: str,
    candidate_ref: str,
    reviewer: str | None = None,
) -> ExportOutcome:
    """One JSONL-ready row per verdict: the input plus the corrected or preferred answer."""
    pair = load_pair(evals, baseline_ref, candidate_ref)
    items = {item.line: item for item in pair.items}
    rows: list[dict[str, Any]] = []
    left_out = 0
    for review in reviews.verdicts(pair.baseline.eval_id, pair.candidate.eval_id, reviewer):
        item = items.get(review.line)
        if item is None:
            continue
        answer = _final_answer(review, item)
        if answer is None:
            left_out += 1
            continue
        messages = [dict(message) for message in item.messages]
        messages.append({"role": "assistant", "content": answer})
        rows.append(
            {
                "line": review.line,
                "slice": item.slice,
                "messages": messages,
                "verdict": review.verdict,
                "reviewer": review.reviewer,
                "note": review.note,
                "baseline_output": item.baseline_output,
                "candidate_output": item.candidate_output,
            }
        )
    return ExportOutcome(tuple(rows), left_out)


def write_jsonl(rows: Iterable[Mapping[str, Any]], path: Path) -> int:
    """Write rows as JSONL atomically (a temporary file renamed into place); the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_replace(path) as handle:
        return write_jsonl_to(rows, handle)


def write_jsonl_to(rows: Iterable[Mapping[str, Any]], handle: BinaryIO) -> int:
    """Write rows as JSONL lines to an open binary handle; the row count."""
    count = 0
    for row in rows:
        handle.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        count += 1
    return count


# -- the room ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateSummary:
    """The latest stored gate verdict of this baseline/candidate pair."""

    gate_id: int
    passed: bool
    slices: Mapping[str, bool]
    """slice → whether every rule judging it passed."""
    scorer: str | None = None
    """The spec's default scorer."""


def gate_summary(results: Sequence[GateResultRecord], baseline_eval_id: int) -> GateSummary | None:
    mine = [result for result in results if result.baseline_eval_id == baseline_eval_id]
    if not mine:
        return None
    latest = mine[-1]
    slices: dict[str, bool] = {}
    for rule in latest.verdict.get("rules", []):
        if isinstance(rule, Mapping) and isinstance(rule.get("slice"), str):
            name = str(rule["slice"])
            slices[name] = slices.get(name, True) and bool(rule.get("passed"))
    scorer = latest.spec.get("scorer") if isinstance(latest.spec, Mapping) else None
    return GateSummary(
        latest.gate_id, latest.passed, slices, scorer if isinstance(scorer, str) else None
    )


@dataclass(frozen=True, slots=True)
class ReviewRoom:
    """Everything the review screen shows when it opens."""

    pair: ReviewPair
    comparison: Comparison | None
    """None when no example is scored by both evals."""
    gate: GateSummary | None
    reviewer: str
    mine: Mapping[int, ReviewRecord]
    """This reviewer's verdicts by line."""
    agreement: tuple[Agreement, ...]
    judge: JudgeView | None = None
    """The pair's latest LLM-judge run, when there is one (shown as the judge's, apart)."""


def compare_pair(pair: ReviewPair) -> Comparison | None:
    a = {item.line: item.score_a for item in pair.items}
    b = {item.line: item.score_b for item in pair.items}
    slices = {item.line: item.slice for item in pair.items}
    try:
        return compare_scores(a, b, slices, pair.kind, scorer=pair.scorer)
    except InputError:
        return None


def load_review_room(
    evals: EvalRepository,
    reviews: ReviewRepository,
    baseline_ref: str,
    candidate_ref: str,
    scorer: str | None = None,
    reviewer: str | None = None,
    judges: JudgeRepository | None = None,
) -> ReviewRoom:
    """Everything the room shows. Without a named scorer, the scorer of the pair's latest gate
    (so the slice table scores what the gate column judged), else compare's default."""
    baseline, candidate = evals.eval_by_ref(baseline_ref), evals.eval_by_ref(candidate_ref)
    gate = gate_summary(evals.gate_results(candidate.eval_id), baseline.eval_id)
    if scorer is None and gate is not None:
        scorer = gate.scorer
    pair = _pair_of(evals, baseline, candidate, scorer)
    name = reviewer or current_reviewer()
    everyone = reviews.verdicts(pair.baseline.eval_id, pair.candidate.eval_id)
    judge = None
    if judges is not None:
        slices = {item.line: item.slice for item in pair.items}
        judge = judge_view(judges, pair.baseline, pair.candidate, everyone, slices)
    return ReviewRoom(
        pair=pair,
        comparison=compare_pair(pair),
        gate=gate,
        reviewer=name,
        mine={review.line: review for review in everyone if review.reviewer == name},
        agreement=reviewer_agreement(everyone),
        judge=judge,
    )
