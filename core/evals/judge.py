"""LLM-as-judge: a local model compares baseline and candidate outputs pairwise.

Each example is judged twice, with the two outputs in swapped positions (Response A / B), and
the judge's answer is read from its next-token probabilities of the letters A, B and C (tie)
rather than from generated text, so there is nothing to parse and no sampling. A verdict
stands only when both orders agree; otherwise it is `inconsistent` (the judge followed the
position, not the content) and counts as a tie in the win rate.

Judge results are stored apart from human reviews (store/judges.py) and always presented as
the judge's: a small local judge is a cheap first pass, and its agreement with the human
verdicts on the same examples (Cohen's κ) says how far to trust it.

torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import hashlib
import json
import math
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.evals.input_files import read_small_text
from core.evals.outputs import EvalExample
from core.evals.service import _same_version, _Scoring
from core.evals.stats import bootstrap_mean_ci, cohens_kappa
from core.safefiles import append_durably, finished_lines
from store.errors import InputError
from store.evals import EvalRecord, EvalRepository
from store.judges import (
    JudgeChoice,
    JudgedExample,
    JudgeRepository,
    JudgeRunRecord,
    JudgeVerdict,
)
from store.reviews import ReviewRecord
from store.workspace import Workspace

Progress = Callable[[int, int], None]

DEFAULT_TEMPLATE = """You compare two answers given by assistants to the same conversation.
Judge which answer better serves the user: correct, following the instructions and the \
expected format, no longer than needed. The order of the answers and their length must not \
sway you.

[Conversation]
{conversation}

[Reference answer]
{reference}

[Answer A]
{response_a}

[Answer B]
{response_b}

Reply with one letter: A if answer A is better, B if answer B is better, C if they are \
equally good."""
REQUIRED_FIELDS = ("{response_a}", "{response_b}")
KNOWN_FIELDS = ("conversation", "reference", "response_a", "response_b")
LETTERS = ("A", "B", "C")
DEFAULT_MAX_FIELD_CHARS = 4000
TEMPLATE_LIMIT = 1 << 20
"""1 MiB: a template past that cannot fit any judge's context, and is read whole."""
NO_REFERENCE = "(none)"


# -- the prompt ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JudgeTemplate:
    text: str
    source: str
    """Where it came from: `default`, or the template file's path."""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def load_template(path: Path | None) -> JudgeTemplate:
    """The default template, or a text file with {response_a} and {response_b} (and optionally
    {conversation} and {reference}); literal braces are written {{ and }}."""
    if path is None:
        return JudgeTemplate(DEFAULT_TEMPLATE, "default")
    text = read_small_text(path, "the judge template", TEMPLATE_LIMIT)
    fields = _plain_fields(path, text)
    # From the parsed fields, not the text: "{{response_b}}" is a literal, not the answer.
    missing = [name for name in REQUIRED_FIELDS if name.strip("{}") not in fields]
    if missing:
        raise InputError(
            f"the judge template {path} lacks {' and '.join(missing)}; it must show both answers"
        )
    return JudgeTemplate(text, str(path))


def _plain_fields(path: Path, text: str) -> set[str]:
    """The template's fields, all plain names: str.format would otherwise evaluate
    {response_a.__class__} (an attribute walk over ftod's objects), {response_a[0]}, or a
    width such as {response_a:>9999999} that pads each prompt to gigabytes."""
    known = ", ".join("{" + name + "}" for name in KNOWN_FIELDS)
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as error:
        raise InputError(
            f"the judge template {path} has an unbalanced brace ({error}); write literal braces "
            "as {{ and }}"
        ) from error
    fields: set[str] = set()
    for _literal, field_name, format_spec, conversion in parts:
        if field_name is None:
            continue
        if field_name not in KNOWN_FIELDS:
            raise InputError(
                f"the judge template {path} has a field other than {known} "
                f"({{{field_name}}}); fields are plain names, and literal braces are written as "
                "{{ and }}"
            )
        if format_spec or conversion:
            shown = "{" + field_name + (f"!{conversion}" if conversion else "")
            shown += (f":{format_spec}" if format_spec else "") + "}"
            raise InputError(
                f"the judge template {path} has {shown}; fields are plain names ({known}), "
                "without conversions or format specs (write literal braces as {{ and }})"
            )
        fields.add(field_name)
    return fields


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + " …[cut]"


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "".join(
            part if isinstance(part, str) else str(part.get("text") or "")
            for part in content
            if isinstance(part, str | dict)
        )
    else:
        text = ""
    calls = message.get("tool_calls")
    if calls:
        text += ("\n" if text else "") + f"(tool calls: {calls})"
    return text


def conversation_text(example: EvalExample) -> str:
    """The input turns (the reference answer left out) as `role: text` lines."""
    messages = example.messages
    if example.reference is not None and messages:
        messages = messages[:-1]
    lines = (f"{message.get('role', '?')}: {_message_text(message)}" for message in messages)
    return "\n".join(lines)


def judge_prompt(
    template: JudgeTemplate,
    example: EvalExample,
    response_a: str,
    response_b: str,
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
) -> str:
    return template.text.format(
        conversation=_clip(conversation_text(example), max_field_chars),
        reference=_clip(example.reference, max_field_chars)
        if example.reference is not None
        else NO_REFERENCE,
        response_a=_clip(response_a, max_field_chars),
        response_b=_clip(response_b, max_field_chars),
    )


# -- reading the judge's answer ------------------------------------------------------------------


def choice_token_ids(tokenizer: Any) -> dict[str, tuple[int, ...]]:
    """Every single token that spells each answer letter (with and without a leading space)."""
    found: dict[str, set[int]] = {letter: set() for letter in LETTERS}
    for letter in LETTERS:
        for text in (letter, " " + letter):
            ids = tokenizer.encode(text, add_special_tokens=False)
            for token in ids:
                if tokenizer.decode([token]).strip() == letter:
                    found[letter].add(int(token))
    for letter, ids in found.items():
        if not ids:
            raise InputError(
                f"the judge's tokenizer has no token for the answer letter {letter!r}",
                title="Unusable judge model",
            )
    shared = found["A"] & found["B"] | found["A"] & found["C"] | found["B"] & found["C"]
    if shared:
        raise InputError(
            "the judge's tokenizer spells two answer letters with one token", title="Unusable judge"
        )
    return {letter: tuple(sorted(ids)) for letter, ids in found.items()}


def letter_probabilities(
    log_probs: Mapping[int, float], choice_ids: Mapping[str, Sequence[int]]
) -> tuple[float, float, float]:
    """P(A), P(B), P(C) renormalised over the three letters, from next-token log-probabilities
    (every token spelling a letter counts for it)."""
    masses = []
    for letter in LETTERS:
        values = [log_probs[token] for token in choice_ids[letter]]
        top = max(values)
        masses.append(top + math.log(sum(math.exp(value - top) for value in values)))
    top = max(masses)
    weights = [math.exp(mass - top) for mass in masses]
    total = sum(weights)
    p_a, p_b, p_c = (weight / total for weight in weights)
    return p_a, p_b, p_c


def _pick(p_baseline: float, p_candidate: float, p_tie: float) -> JudgeChoice:
    # Ties between probabilities are practically impossible; break them toward "tie" so an
    # undecided judge never invents a winner.
    best = max(p_baseline, p_candidate, p_tie)
    if p_tie == best:
        return "tie"
    return "candidate" if p_candidate == best else "baseline"


def combine_orders(
    line: int,
    baseline_first: tuple[float, float, float],
    candidate_first: tuple[float, float, float],
) -> JudgedExample:
    """One example's verdict from P(A), P(B), P(C) in both orders.

    `baseline_first`: the baseline shown as answer A; `candidate_first`: the candidate as A.
    """
    base_a, cand_b, tie_1 = baseline_first
    cand_a, base_b, tie_2 = candidate_first
    first = _pick(base_a, cand_b, tie_1)
    second = _pick(base_b, cand_a, tie_2)
    verdict: JudgeVerdict = first if first == second else "inconsistent"
    return JudgedExample(
        line=line,
        verdict=verdict,
        baseline_first=first,
        candidate_first=second,
        p_candidate=(cand_b + cand_a) / 2,
        p_baseline=(base_a + base_b) / 2,
        p_tie=(tie_1 + tie_2) / 2,
    )


# -- the checkpoint ------------------------------------------------------------------------------

Reading = tuple[float, float, float]


def judge_partial_path(workspace: Workspace, baseline_eval_id: int, candidate_eval_id: int) -> Path:
    return workspace.root / "evals" / f"judge-{baseline_eval_id}-{candidate_eval_id}.partial.jsonl"


def read_judge_checkpoint(path: Path) -> dict[tuple[int, int], Reading]:
    """Finished readings (line, order) → P(A), P(B), P(C) of a crashed judge run; a torn last
    line (a crash mid-write) is dropped."""
    done: dict[tuple[int, int], Reading] = {}
    for number, raw in enumerate(finished_lines(path), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            p_a, p_b, p_c = (float(value) for value in record["p"])
            done[(int(record["line"]), int(record["order"]))] = (p_a, p_b, p_c)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise InputError(
                f"{path}: line {number} is not a finished judge reading ({error}); delete the "
                "file to start over"
            ) from error
    return done


def _append_readings(path: Path, readings: Sequence[tuple[int, int, Reading]]) -> None:
    append_durably(
        path,
        (
            (json.dumps({"line": line, "order": order, "p": list(probabilities)}) + "\n").encode()
            for line, order, probabilities in readings
        ),
    )


# -- running the judge ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Request:
    line: int
    order: int
    """0: baseline as answer A; 1: candidate as answer A."""
    input_ids: tuple[int, ...]


def _context_limit(model: Any) -> int | None:
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _score_batch(
    loaded: Any, batch: Sequence[_Request], choice_ids: Mapping[str, Sequence[int]]
) -> list[tuple[float, float, float]]:
    """One left-padded forward pass; the last position's distribution over the letters."""
    import torch

    pad = int(loaded.tokenizer.pad_token_id)
    width = max(len(item.input_ids) for item in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        ids[row, width - len(item.input_ids) :] = torch.tensor(item.input_ids)
        mask[row, width - len(item.input_ids) :] = 1
    # Left padding must not shift positions: each row counts from its first real token.
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    device = next(loaded.model.parameters()).device
    with torch.inference_mode():
        inputs = {
            "input_ids": ids.to(device),
            "attention_mask": mask.to(device),
            "position_ids": positions.to(device),
            "use_cache": False,
        }
        try:
            # Only the last position is read: without this the LM head would materialise
            # batch × length × vocabulary logits (gigabytes for a 150k vocabulary).
            output = loaded.model(**inputs, logits_to_keep=1)
        except TypeError:  # a model class whose forward has no logits_to_keep
            output = loaded.model(**inputs)
        logits = output.logits[:, -1, :]
        log_probs = torch.log_softmax(logits.float(), dim=-1).cpu()
    wanted = sorted({token for tokens in choice_ids.values() for token in tokens})
    picked = log_probs[:, wanted].tolist()
    results = []
    for row in picked:
        table = dict(zip(wanted, row, strict=True))
        results.append(letter_probabilities(table, choice_ids))
    return results


@dataclass(frozen=True, slots=True)
class JudgeInputs:
    baseline: EvalRecord
    candidate: EvalRecord
    examples: tuple[EvalExample, ...]
    baseline_outputs: Mapping[int, str]
    candidate_outputs: Mapping[int, str]


def load_judge_inputs(evals: EvalRepository, baseline_ref: str, candidate_ref: str) -> JudgeInputs:
    """Every example both evals have an output for, in line order."""
    baseline, candidate = evals.eval_by_ref(baseline_ref), evals.eval_by_ref(candidate_ref)
    if baseline.eval_id == candidate.eval_id:
        raise InputError(f"baseline and candidate are the same eval ({baseline.label!r})")
    _same_version(baseline, candidate)
    examples = _Scoring(evals, baseline.version_id).examples
    outputs_a = {output.line: output.output for output in evals.outputs(baseline.eval_id)}
    outputs_b = {output.line: output.output for output in evals.outputs(candidate.eval_id)}
    lines = sorted(outputs_a.keys() & outputs_b.keys() & examples.keys())
    if not lines:
        raise InputError(
            f"{baseline.label!r} and {candidate.label!r} have no example with an output in both"
        )
    return JudgeInputs(
        baseline=baseline,
        candidate=candidate,
        examples=tuple(examples[line] for line in lines),
        baseline_outputs=outputs_a,
        candidate_outputs=outputs_b,
    )


def judge_examples(
    loaded: Any,
    template: JudgeTemplate,
    inputs: JudgeInputs,
    *,
    batch_size: int = 8,
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
    progress: Progress | None = None,
    checkpoint_file: Path | None = None,
) -> list[JudgedExample]:
    """Judge every example in both orders with a loaded model (core.evals.generate.LoadedModel).

    With `checkpoint_file`, readings already there are kept and each finished batch is
    appended (and fsynced) to it, so a crash loses at most one batch.
    """
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, not {batch_size}")
    tokenizer = loaded.tokenizer
    choice_ids = choice_token_ids(tokenizer)
    limit = _context_limit(loaded.model)
    requests: list[_Request] = []
    for example in inputs.examples:
        baseline = inputs.baseline_outputs[example.line]
        candidate = inputs.candidate_outputs[example.line]
        for order, (first, second) in enumerate(((baseline, candidate), (candidate, baseline))):
            text = judge_prompt(template, example, first, second, max_field_chars)
            rendered = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
            )
            ids = tuple(int(t) for t in tokenizer(rendered, add_special_tokens=False)["input_ids"])
            if limit is not None and len(ids) > limit:
                raise InputError(
                    f"line {example.line}: the judge prompt is {len(ids)} tokens, over the judge "
                    f"model's context of {limit}; lower --max-field-chars (now {max_field_chars})",
                    title="Judge prompt too long",
                )
            requests.append(_Request(example.line, order, ids))
    # Every prompt is checked before the first forward pass, so a long example fails the run
    # at once instead of after an hour. Length-sorted batches waste little on padding.
    readings: dict[tuple[int, int], Reading] = {}
    if checkpoint_file is not None:
        wanted = {(request.line, request.order) for request in requests}
        readings = {
            key: value
            for key, value in read_judge_checkpoint(checkpoint_file).items()
            if key in wanted
        }
    todo = [r for r in requests if (r.line, r.order) not in readings]
    ordered = sorted(todo, key=lambda request: len(request.input_ids))
    total = len(requests)
    if progress is not None:
        progress(len(readings), total)
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start : start + batch_size]
        finished = [
            (request.line, request.order, probabilities)
            for request, probabilities in zip(
                batch, _score_batch(loaded, batch, choice_ids), strict=True
            )
        ]
        if checkpoint_file is not None:
            _append_readings(checkpoint_file, finished)
        for line, order, probabilities in finished:
            readings[(line, order)] = probabilities
        if progress is not None:
            progress(len(readings), total)
    return [
        combine_orders(example.line, readings[(example.line, 0)], readings[(example.line, 1)])
        for example in inputs.examples
    ]


@dataclass(frozen=True, slots=True)
class JudgeOutcome:
    run: JudgeRunRecord
    summary: JudgeSummary


def run_judge(
    evals: EvalRepository,
    judges: JudgeRepository,
    baseline_ref: str,
    candidate_ref: str,
    *,
    model: str,
    template_path: Path | None = None,
    batch_size: int = 8,
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
    progress: Progress | None = None,
    workspace: Workspace | None = None,
    resume: bool = False,
) -> JudgeOutcome:
    """Judge the pair with a local model and store the run (all verdicts, or nothing).

    With a workspace, readings are checkpointed under .ftod/evals/ as they finish; after a
    crash, the same call with `resume=True` judges only what is missing.
    """
    from core.evals.generate import (
        _check_partial,
        _meta_path,
        _start_partial,
        load_model,
        resolve_model,
    )

    if max_field_chars < 1:
        raise InputError(f"--max-field-chars must be at least 1, not {max_field_chars}")
    template = load_template(template_path)
    inputs = load_judge_inputs(evals, baseline_ref, candidate_ref)
    resolved = resolve_model(model)
    partial = None
    checkpoint_settings = {
        "judge_model": resolved,
        "template_sha256": template.sha256,
        "max_field_chars": max_field_chars,
        "baseline": inputs.baseline.label,
        "candidate": inputs.candidate.label,
    }
    if workspace is not None:
        partial = judge_partial_path(workspace, inputs.baseline.eval_id, inputs.candidate.eval_id)
        _check_partial(
            partial,
            resume,
            f"judge of {inputs.candidate.label} vs {inputs.baseline.label}",
            checkpoint_settings,
            read_judge_checkpoint,
        )
    loaded = load_model(resolved)
    if partial is not None:
        _start_partial(partial, checkpoint_settings)
    verdicts = judge_examples(
        loaded,
        template,
        inputs,
        batch_size=batch_size,
        max_field_chars=max_field_chars,
        progress=progress,
        checkpoint_file=partial,
    )
    settings = {
        "judge_model_path": resolved,
        "template": template.source,
        "template_text": template.text,
        "max_field_chars": max_field_chars,
        "batch_size": batch_size,
        "answer": "next-token probabilities of A / B / C (tie), both orders",
        "choice_tokens": {k: list(v) for k, v in choice_token_ids(loaded.tokenizer).items()},
        "revision": getattr(loaded.model.config, "_commit_hash", None),
    }
    run = judges.add_run(
        baseline_eval_id=inputs.baseline.eval_id,
        candidate_eval_id=inputs.candidate.eval_id,
        judge_model=model,
        template_sha256=template.sha256,
        settings=settings,
        verdicts=verdicts,
    )
    if partial is not None:
        # Stored: the checkpoint has served its purpose.
        partial.unlink(missing_ok=True)
        _meta_path(partial).unlink(missing_ok=True)
    slices = {example.line: example.slice for example in inputs.examples}
    return JudgeOutcome(run, summarize(verdicts, slices))


# -- summaries -----------------------------------------------------------------------------------

CANDIDATE_SCORE: dict[JudgeVerdict, float] = {
    "candidate": 1.0,
    "baseline": 0.0,
    "tie": 0.5,
    "inconsistent": 0.5,
}


@dataclass(frozen=True, slots=True)
class JudgeSliceSummary:
    slice: str
    n: int
    candidate_wins: int
    baseline_wins: int
    ties: int
    inconsistent: int
    win_rate: float
    """(candidate wins + ½ · (ties + inconsistent)) / n: 0.5 is no preference."""
    ci: tuple[float, float]
    """Percentile bootstrap interval of the win rate."""

    @property
    def consistency(self) -> float:
        """The share of examples where both orders gave the same verdict."""
        return 1.0 - self.inconsistent / self.n if self.n else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "slice": self.slice,
            "n": self.n,
            "candidate_wins": self.candidate_wins,
            "baseline_wins": self.baseline_wins,
            "ties": self.ties,
            "inconsistent": self.inconsistent,
            "win_rate": self.win_rate,
            "ci": list(self.ci),
            "consistency": self.consistency,
        }


@dataclass(frozen=True, slots=True)
class JudgeSummary:
    slices: tuple[JudgeSliceSummary, ...]
    overall: JudgeSliceSummary
    first_position_picks: int
    """Inconsistent examples where the judge chose answer A in both orders."""
    second_position_picks: int

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": "llm_judge",
            "slices": [entry.as_json() for entry in self.slices],
            "overall": self.overall.as_json(),
            "position_bias": {
                "first_position_picks": self.first_position_picks,
                "second_position_picks": self.second_position_picks,
            },
        }


def _slice_summary(name: str, verdicts: Sequence[JudgedExample]) -> JudgeSliceSummary:
    counts = {verdict: 0 for verdict in CANDIDATE_SCORE}
    for verdict in verdicts:
        counts[verdict.verdict] += 1
    scores = [CANDIDATE_SCORE[verdict.verdict] for verdict in verdicts]
    n = len(scores)
    return JudgeSliceSummary(
        slice=name,
        n=n,
        candidate_wins=counts["candidate"],
        baseline_wins=counts["baseline"],
        ties=counts["tie"],
        inconsistent=counts["inconsistent"],
        win_rate=sum(scores) / n if n else math.nan,
        ci=bootstrap_mean_ci(scores) if n else (math.nan, math.nan),
    )


def summarize(verdicts: Sequence[JudgedExample], slices: Mapping[int, str | None]) -> JudgeSummary:
    by_slice: dict[str, list[JudgedExample]] = {}
    for verdict in verdicts:
        name = slices.get(verdict.line)
        if name is not None:
            by_slice.setdefault(name, []).append(verdict)
    first = sum(
        1
        for v in verdicts
        if v.verdict == "inconsistent"
        and v.baseline_first == "baseline"
        and v.candidate_first == "candidate"
    )
    second = sum(
        1
        for v in verdicts
        if v.verdict == "inconsistent"
        and v.baseline_first == "candidate"
        and v.candidate_first == "baseline"
    )
    return JudgeSummary(
        slices=tuple(_slice_summary(name, by_slice[name]) for name in sorted(by_slice)),
        overall=_slice_summary("overall", verdicts),
        first_position_picks=first,
        second_position_picks=second,
    )


# -- agreement with people -----------------------------------------------------------------------

HUMAN_TO_JUDGE: dict[str, JudgeChoice] = {
    "baseline": "baseline",
    "candidate": "candidate",
    "tie": "tie",
    # Neither answer is acceptable: for a pairwise judge that is "no preference".
    "both_wrong": "tie",
}


@dataclass(frozen=True, slots=True)
class JudgeAgreement:
    reviewer: str
    common: int
    """Examples both the judge and this reviewer judged."""
    agreed: int
    kappa: float | None

    @property
    def rate(self) -> float:
        return self.agreed / self.common if self.common else math.nan

    def as_json(self) -> dict[str, Any]:
        return {
            "reviewer": self.reviewer,
            "common": self.common,
            "agreed": self.agreed,
            "agreement": self.rate if self.common else None,
            "kappa": self.kappa,
        }


def judge_agreement(
    verdicts: Iterable[JudgedExample], reviews: Iterable[ReviewRecord]
) -> tuple[JudgeAgreement, ...]:
    """Cohen's κ between the judge and each reviewer on the examples both judged.

    Compared on baseline / candidate / tie: a reviewer's "both wrong" is a tie, and so is an
    inconsistent judge verdict.
    """
    judged: dict[int, JudgeChoice] = {
        v.line: "tie" if v.verdict == "inconsistent" else v.verdict for v in verdicts
    }
    by_reviewer: dict[str, list[tuple[str, str]]] = {}
    for review in reviews:
        if review.line in judged:
            by_reviewer.setdefault(review.reviewer, []).append(
                (HUMAN_TO_JUDGE[review.verdict], judged[review.line])
            )
    return tuple(
        JudgeAgreement(
            reviewer=name,
            common=len(pairs),
            agreed=sum(1 for human, judge in pairs if human == judge),
            kappa=cohens_kappa(pairs),
        )
        for name, pairs in sorted(by_reviewer.items())
    )


@dataclass(frozen=True, slots=True)
class JudgeView:
    """The latest judge run of a pair, as the review room and `ftod judge show` present it."""

    run: JudgeRunRecord
    verdicts: Mapping[int, JudgedExample] = field(default_factory=dict)
    summary: JudgeSummary | None = None
    agreement: tuple[JudgeAgreement, ...] = ()


def example_slices(evals: EvalRepository, record: EvalRecord) -> dict[int, str | None]:
    """Every example line of the eval's dataset version and its slice."""
    return _Scoring(evals, record.version_id).slices()


def judge_view(
    judges: JudgeRepository,
    baseline: EvalRecord,
    candidate: EvalRecord,
    reviews: Sequence[ReviewRecord],
    slices: Mapping[int, str | None],
) -> JudgeView | None:
    run = judges.latest_run(baseline.eval_id, candidate.eval_id)
    if run is None:
        return None
    verdicts = judges.verdicts(run.judge_id)
    return JudgeView(
        run=run,
        verdicts={verdict.line: verdict for verdict in verdicts},
        summary=summarize(verdicts, slices),
        agreement=judge_agreement(verdicts, reviews),
    )
