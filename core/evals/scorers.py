"""Scorers: one model output (and its reference) in, one score out.

A scorer is built from a spec, either a string ("exact", "contains:refund",
"length_bounds:max_words=50") or a mapping ({"name": "regex", "pattern": "^\\d+$"}), and its
`spec()` is what an eval records: the family name plus every setting with its default filled
in, so `build_scorer(scorer.spec())` rebuilds the same scorer and a later change of default
cannot silently change an old eval's meaning.

Kinds: "pass_fail" scorers return 0.0 or 1.0, "continuous" ones a float (chrF, ROUGE-L and
verbosity_ratio). A score of None means "not applicable": a reference-based scorer on an
example without a reference, or a label scorer whose reference has no label. Callers skip
those examples and say so, rather than counting them as failures.

A scorer's `name` is how evals, `--scorer` and gate specs refer to it: the family name unless
the mapping spec sets `as`, which is how two scorers of one family live in one eval.

Families (settings with defaults; * = needs a reference; ARG = what "family:ARG" sets):

    exact*            pass  output.strip() == reference.strip()
    normalised*       pass  equal after `normalise` (alias: normalized)
    regex             pass  pattern (ARG), ignore_case=false, full_match=false (search anywhere)
    contains          pass  substrings (ARG, text or list), ignore_case=false, require=all|any
    not_contains      pass  substrings (ARG), ignore_case=false; passes when none occurs
    label*            pass  pattern (ARG; one group or (?P<label>...)), ignore_case=true,
                            reference_mode=auto|extract|whole; labels compared normalised
    json_valid        pass  allow_fences=false
    json_schema       pass  schema, or schema_path (ARG; the file is read and its schema
                            recorded); allow_fences=false; ftod's own validator, see
                            `check_schema` (the same verdicts whether jsonschema is installed)
    length_bounds     pass  min_chars, max_chars, min_words, max_words (at least one)
    verbosity_ratio*  cont  unit=chars|words: len(output) / len(reference)
    verbosity_bounds* pass  unit, min_ratio, max_ratio (at least one) on that ratio
    refusal           pass  1 = REFUSED; patterns (replace the defaults), extra_patterns,
                            window (only the first N characters)
    chrf*             cont  char_order=6, beta=2, whitespace=false, lowercase=false; in [0, 1]
    rouge_l*          cont  casefold=false; LCS F1 on whitespace tokens, in [0, 1]
    custom            kind  function (ARG): the NAME of a function marked @scorer("NAME") in a
                            scorer file the user named (see core.evals.scorer_files); its
                            kind and needs_reference are the decorator's. Called as
                            function(output, reference, example) -> bool | float | None

Every number has a range (chrf's char_order 1..MAX_CHAR_ORDER, counts up to MAX_COUNT, texts
up to MAX_TEXT_CHARS): a spec is data anyone may hand over, and an unbounded setting can make
one scorer run for hours.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from core.evals.input_files import read_small_text
from core.evals.scorer_files import RegisteredScorer as RegisteredScorer
from core.evals.scorer_files import load_scorer_files as _load_scorer_files
from core.evals.scorer_files import registered_scorer
from core.evals.scorer_files import registered_scorers as registered_scorers

# Re-exported: scorer files write `from core.evals.scorers import scorer`.
from core.evals.scorer_files import scorer as scorer
from core.evals.stats import SCORE_KINDS, ScoreKind
from store.errors import InputError

DEFAULT_SCORER = "exact"
MAX_CHAR_ORDER = 20
MAX_BETA = 100.0
MAX_COUNT = 1_000_000_000
MAX_RATIO = 1_000_000.0
MAX_TEXT_CHARS = 10_000
MAX_TEXTS = 1_000

ScoreFn = Callable[[str, str | None, Mapping[str, Any]], float | None]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@/+-]*")


@dataclass(frozen=True, slots=True)
class Scorer:
    """A configured scorer. Build one with `build_scorer`; `spec()` is its record."""

    name: str
    family: str
    kind: ScoreKind
    needs_reference: bool
    settings: Mapping[str, Any] = field(hash=False)
    """JSON-serialisable, every default filled in. Treat as read-only."""
    function: ScoreFn = field(repr=False, compare=False, hash=False)

    def score(
        self, output: str, reference: str | None = None, example: Mapping[str, Any] = _EMPTY
    ) -> float | None:
        """Score one output; None when the scorer does not apply (e.g. no reference)."""
        if not isinstance(output, str):
            raise InputError(f"scorer {self.name}: the output must be text, not {output!r}")
        if self.needs_reference and reference is None:
            return None
        return self.function(output, reference, example)

    def spec(self) -> dict[str, Any]:
        """The scorer as a mapping spec, for an eval's record."""
        record: dict[str, Any] = {"name": self.family}
        if self.name != self.family:
            record["as"] = self.name
        record.update(json.loads(json.dumps(dict(self.settings))))
        return record


# -- text helpers ------------------------------------------------------------------------------


def _strip_punctuation(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _is_edge(text[start]):
        start += 1
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_edge(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("P")


def normalise(text: str) -> str:
    """NFKC, casefold, collapse whitespace, strip punctuation and spaces at both ends.

    NFKC first so full-width letters and ligatures compare equal to plain ones; NFKC again
    after casefolding because casefolding can produce unnormalised sequences. Punctuation
    inside the text is kept: "3.5" and "35" must stay different.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return _strip_punctuation(" ".join(folded.split()))


def _char_ngrams(text: str, order: int, whitespace: bool) -> list[Counter[str]]:
    line = text if whitespace else "".join(text.split())
    return [Counter(line[i : i + n] for i in range(len(line) - n + 1)) for n in range(1, order + 1)]


def chrf_score(
    hypothesis: str,
    reference: str,
    char_order: int = 6,
    beta: float = 2.0,
    whitespace: bool = False,
    lowercase: bool = False,
) -> float:
    """Sentence chrF in [0, 1]: sacrebleu's `CHRF()` defaults, divided by 100.

    Per n-gram order 1..char_order: precision = matched / hypothesis n-grams and recall =
    matched / reference n-grams (matched counts clipped per n-gram). Precision and recall are
    each averaged over the "effective" orders (those where both sides have n-grams, so a short
    string is not punished for lacking 6-grams) and combined as
    F_beta = (1 + β²)·P·R / (β²·P + R); β = 2 weighs recall twice as much as precision.
    Whitespace is removed before extracting n-grams unless `whitespace`. An empty side, or no
    shared characters, scores 0.
    """
    if lowercase:
        hypothesis, reference = hypothesis.lower(), reference.lower()
    hyp_grams = _char_ngrams(hypothesis, char_order, whitespace)
    ref_grams = _char_ngrams(reference, char_order, whitespace)
    precision_sum = recall_sum = 0.0
    effective = 0
    for hyp, ref in zip(hyp_grams, ref_grams, strict=True):
        hyp_total, ref_total = sum(hyp.values()), sum(ref.values())
        if hyp_total == 0 or ref_total == 0:
            continue
        matched = sum(min(count, ref[gram]) for gram, count in hyp.items() if gram in ref)
        precision_sum += matched / hyp_total
        recall_sum += matched / ref_total
        effective += 1
    if effective == 0:
        return 0.0
    precision, recall = precision_sum / effective, recall_sum / effective
    if precision + recall == 0.0:
        return 0.0
    factor = beta * beta
    return (1.0 + factor) * precision * recall / (factor * precision + recall)


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences.

    Bit-parallel (Hyyrö 2004): one big-int add/or per token of `second`, so two 2,000-token
    answers take milliseconds where the textbook table would take seconds in Python.
    """
    if not first or not second:
        return 0
    masks: dict[str, int] = {}
    for index, token in enumerate(first):
        masks[token] = masks.get(token, 0) | (1 << index)
    full = (1 << len(first)) - 1
    row = full
    for token in second:
        match = masks.get(token)
        if match is None:
            continue
        taken = row & match
        row = ((row + taken) | (row - taken)) & full
    return len(first) - row.bit_count()


def rouge_l_score(hypothesis: str, reference: str, casefold: bool = False) -> float:
    """ROUGE-L F1 on whitespace tokens: LCS/len(hyp) and LCS/len(ref), harmonic mean.

    An empty side scores 0 (as the rouge-score package does).
    """
    if casefold:
        hypothesis, reference = hypothesis.casefold(), reference.casefold()
    hyp, ref = hypothesis.split(), reference.split()
    common = lcs_length(hyp, ref)
    if common == 0:
        return 0.0
    precision, recall = common / len(hyp), common / len(ref)
    return 2.0 * precision * recall / (precision + recall)


# -- JSON --------------------------------------------------------------------------------------

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL)


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def parse_json_output(text: str, allow_fences: bool = False) -> tuple[bool, Any]:
    """(True, value) when `text`, less surrounding whitespace, is one JSON value.

    Python's json module accepts NaN and Infinity; they are not JSON (RFC 8259) and other
    parsers reject them, so they fail here. With `allow_fences` a single ```-fenced block
    counts as its contents, for models that habitually wrap JSON in markdown.
    """
    body = text.strip()
    if allow_fences:
        fenced = _FENCE.fullmatch(body)
        if fenced is not None:
            body = fenced.group(1).strip()
    try:
        return True, json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return False, None


_SCHEMA_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
_SCHEMA_CHECKS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "enum",
        "const",
        "items",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
    }
)
_SCHEMA_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples"}
)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_schema(schema: object, where: str = "schema") -> None:
    """Raise InputError unless `schema` uses only the supported JSON Schema subset.

    Supported: type, properties, required, additionalProperties, enum, const, items (one
    schema), min/maxItems, minimum, maximum, exclusiveMinimum/Maximum (numbers, draft 6+),
    min/maxLength, pattern, and true/false schemas; annotations (title, description, ...) are
    ignored. Anything else ($ref, anyOf, ...) is refused rather than ignored, because
    ignoring a constraint would pass outputs the schema's author meant to fail.
    """
    if isinstance(schema, bool):
        return
    if not isinstance(schema, Mapping):
        raise InputError(f"json_schema: {where} must be an object or true/false")
    unknown = sorted(set(schema) - _SCHEMA_CHECKS - _SCHEMA_ANNOTATIONS)
    if unknown:
        raise InputError(
            f"json_schema: {where} uses {', '.join(unknown)}, which ftod's built-in validator "
            f"does not support (supported: {', '.join(sorted(_SCHEMA_CHECKS))})"
        )
    if "type" in schema:
        types = schema["type"]
        listed = types if isinstance(types, list) else [types]
        if not listed or any(kind not in _SCHEMA_TYPES for kind in listed):
            raise InputError(f"json_schema: {where}.type must be one of {', '.join(_SCHEMA_TYPES)}")
    if "properties" in schema:
        properties = schema["properties"]
        if not isinstance(properties, Mapping):
            raise InputError(f"json_schema: {where}.properties must be an object")
        for key, sub in properties.items():
            check_schema(sub, f"{where}.properties.{key}")
    if "required" in schema and not (
        isinstance(schema["required"], list)
        and all(isinstance(key, str) for key in schema["required"])
    ):
        raise InputError(f"json_schema: {where}.required must be a list of names")
    if "additionalProperties" in schema:
        check_schema(schema["additionalProperties"], f"{where}.additionalProperties")
    if "items" in schema:
        if isinstance(schema["items"], list):
            raise InputError(f"json_schema: {where}.items as a list (tuple form) is not supported")
        check_schema(schema["items"], f"{where}.items")
    if "enum" in schema and not (isinstance(schema["enum"], list) and schema["enum"]):
        raise InputError(f"json_schema: {where}.enum must be a non-empty list")
    for key in ("minItems", "maxItems", "minLength", "maxLength"):
        if key in schema:
            value = schema[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"json_schema: {where}.{key} must be a whole number ≥ 0")
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if key in schema and not _is_number(schema[key]):
            raise InputError(f"json_schema: {where}.{key} must be a number")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except (re.error, TypeError) as error:
            message = f"json_schema: {where}.pattern is not a valid regex ({error})"
            raise InputError(message) from error


def _json_equal(left: object, right: object) -> bool:
    # JSON equality: 1 == 1.0, but true is not 1 (Python's == says it is).
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if _is_number(left) and _is_number(right):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            _json_equal(x, y) for x, y in zip(left, right, strict=True)
        )
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and left == right


def _has_type(value: object, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "number":
        return _is_number(value)
    # Draft 6+: 1.0 is an integer.
    return _is_number(value) and float(value).is_integer()  # type: ignore[arg-type]


def validate_json_schema(instance: object, schema: object, path: str = "$") -> str | None:
    """None when `instance` satisfies `schema` (see `check_schema`), else the first problem."""
    if isinstance(schema, bool):
        return None if schema else f"{path}: the schema allows nothing here"
    assert isinstance(schema, Mapping)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_has_type(instance, kind) for kind in types):
            return f"{path}: expected {' or '.join(types)}"
    if "enum" in schema and not any(_json_equal(instance, item) for item in schema["enum"]):
        return f"{path}: not one of the allowed values"
    if "const" in schema and not _json_equal(instance, schema["const"]):
        return f"{path}: not the required value"
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            if key not in instance:
                return f"{path}: missing required property {key!r}"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, value in instance.items():
            if key in properties:
                problem = validate_json_schema(value, properties[key], f"{path}.{key}")
            elif extra is False:
                problem = f"{path}: property {key!r} is not allowed"
            else:
                problem = validate_json_schema(value, extra, f"{path}.{key}")
            if problem is not None:
                return problem
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            return f"{path}: fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(instance) > schema["maxItems"]:
            return f"{path}: more than {schema['maxItems']} items"
        if "items" in schema:
            for index, item in enumerate(instance):
                problem = validate_json_schema(item, schema["items"], f"{path}[{index}]")
                if problem is not None:
                    return problem
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            return f"{path}: shorter than {schema['minLength']} characters"
        if "maxLength" in schema and len(instance) > schema["maxLength"]:
            return f"{path}: longer than {schema['maxLength']} characters"
        if "pattern" in schema and re.search(schema["pattern"], instance) is None:
            return f"{path}: does not match {schema['pattern']!r}"
    if _is_number(instance):
        bounds: tuple[tuple[str, Callable[[Any, Any], bool], str], ...] = (
            ("minimum", operator.ge, "below"),
            ("maximum", operator.le, "above"),
            ("exclusiveMinimum", operator.gt, "not above"),
            ("exclusiveMaximum", operator.lt, "not below"),
        )
        for key, holds, word in bounds:
            if key in schema and not holds(instance, schema[key]):
                return f"{path}: {word} {schema[key]}"
    return None


# -- refusals ----------------------------------------------------------------------------------

_REFUSAL_VERBS = (
    r"(?:help|assist|provide|comply|fulfil|fulfill|do that|do this|support|answer|share|"
    r"engage|create|generate|write|give|discuss)"
)
DEFAULT_REFUSAL_PATTERNS: tuple[str, ...] = (
    rf"\bI (?:can't|cannot|can not|won't|will not) {_REFUSAL_VERBS}",
    rf"\bI(?:'m| am) (?:unable|not able|not allowed|not permitted|not going) to {_REFUSAL_VERBS}",
    r"\bI(?:'m| am) (?:sorry|afraid),? (?:but )?I (?:can't|cannot|won't|will not|am unable|"
    r"'m unable|am not able|'m not able)",
    r"\bI (?:must|have to) (?:respectfully )?(?:decline|refuse)",
    r"\bI (?:don't|do not) feel comfortable",
    r"\bas an AI\b",
    r"\bas a (?:large )?language model\b",
    r"\b(?:against|violates?) (?:my|our|the) (?:guidelines|policies|policy|programming)",
)
"""Case-insensitive regexes for typical refusals. "I'm sorry" alone is not one: support
answers open with "I'm sorry to hear that" all the time."""

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


# -- settings parsing --------------------------------------------------------------------------

_MISSING: Any = object()


class _Settings:
    """One scorer's raw settings: each accessor checks a key and records its final value."""

    def __init__(self, family: str, raw: Mapping[str, Any]) -> None:
        self.family = family
        self.raw = dict(raw)
        self.out: dict[str, Any] = {}

    def _fail(self, key: str, problem: str) -> InputError:
        return InputError(f"scorer {self.family}: {key} {problem}")

    def _get(self, key: str) -> Any:
        return self.raw.get(key, _MISSING)

    def text(self, key: str) -> str:
        value = self._get(key)
        if value is _MISSING:
            raise self._fail(key, "is required")
        if not isinstance(value, str) or not value:
            raise self._fail(key, "must be non-empty text")
        if len(value) > MAX_TEXT_CHARS:
            raise self._fail(key, f"is {len(value):,} characters; at most {MAX_TEXT_CHARS:,}")
        self.out[key] = value
        return value

    def optional_text(self, key: str) -> str | None:
        return None if self._get(key) is _MISSING else self.text(key)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is _MISSING:
            value = default
        if not isinstance(value, bool):
            raise self._fail(key, "must be true or false")
        self.out[key] = value
        return value

    def choice(self, key: str, options: Sequence[str], default: str) -> str:
        value = self._get(key)
        if value is _MISSING:
            value = default
        if value not in options:
            raise self._fail(key, f"must be one of {', '.join(options)}, not {value!r}")
        self.out[key] = value
        return str(value)

    def count(self, key: str, low: int = 0, high: int = MAX_COUNT) -> int | None:
        value = self._get(key)
        if value is _MISSING or value is None:
            self.out[key] = None
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._fail(
                key, f"must be a whole number, at least {low} and at most {high:,}, not {value!r}"
            )
        self.out[key] = value
        return value

    def number(self, key: str, high: float = MAX_RATIO) -> float | None:
        value = self._get(key)
        if value is _MISSING or value is None:
            self.out[key] = None
            return None
        if not _is_number(value) or not math.isfinite(value) or not 0 <= value <= high:
            raise self._fail(
                key, f"must be a number, at least 0 and at most {high:g}, not {value!r}"
            )
        self.out[key] = value
        return float(value)

    def texts(self, key: str, default: Sequence[str] | None = None) -> list[str]:
        value = self._get(key)
        if value is _MISSING:
            if default is None:
                raise self._fail(key, "is required")
            value = list(default)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise self._fail(key, "must be a list of non-empty texts")
        if len(value) > MAX_TEXTS or any(len(item) > MAX_TEXT_CHARS for item in value):
            raise self._fail(
                key, f"takes at most {MAX_TEXTS:,} texts of at most {MAX_TEXT_CHARS:,} characters"
            )
        if not value and default is None:
            # `all([])` is true: an empty required list would pass every output.
            raise self._fail(key, "must name at least one text")
        self.out[key] = list(value)
        return list(value)

    def pattern(self, key: str, flags: int = 0) -> re.Pattern[str]:
        source = self.text(key)
        try:
            return re.compile(source, flags)
        except re.error as error:
            raise self._fail(key, f"is not a valid regex ({error})") from error

    def finish(self) -> dict[str, Any]:
        unknown = sorted(set(self.raw) - set(self.out))
        if unknown:
            known = ", ".join(sorted(self.out)) or "none"
            raise InputError(
                f"scorer {self.family}: unknown setting(s) {', '.join(unknown)} "
                f"(its settings: {known})"
            )
        return self.out


@dataclass(frozen=True, slots=True)
class _Built:
    kind: ScoreKind
    needs_reference: bool
    function: ScoreFn


def _pass(condition: bool) -> float:
    return 1.0 if condition else 0.0


def _referenced(function: Callable[[str, str], float | None]) -> ScoreFn:
    # Scorer.score never calls a reference scorer without one; this keeps the types honest.
    def call(output: str, reference: str | None, example: Mapping[str, Any]) -> float | None:
        return None if reference is None else function(output, reference)

    return call


def _unreferenced(function: Callable[[str], float | None]) -> ScoreFn:
    def call(output: str, reference: str | None, example: Mapping[str, Any]) -> float | None:
        return function(output)

    return call


# -- the families ------------------------------------------------------------------------------


def _exact(settings: _Settings) -> _Built:
    return _Built(
        "pass_fail", True, _referenced(lambda out, ref: _pass(out.strip() == ref.strip()))
    )


def _normalised(settings: _Settings) -> _Built:
    return _Built(
        "pass_fail", True, _referenced(lambda out, ref: _pass(normalise(out) == normalise(ref)))
    )


def _regex(settings: _Settings) -> _Built:
    ignore_case = settings.flag("ignore_case", False)
    full_match = settings.flag("full_match", False)
    pattern = settings.pattern("pattern", re.IGNORECASE if ignore_case else 0)

    def score(output: str) -> float:
        # full_match tests the output less surrounding whitespace; search finds it anywhere.
        found = pattern.fullmatch(output.strip()) if full_match else pattern.search(output)
        return _pass(found is not None)

    return _Built("pass_fail", False, _unreferenced(score))


def _contains(settings: _Settings) -> _Built:
    ignore_case = settings.flag("ignore_case", False)
    require = settings.choice("require", ("all", "any"), "all")
    needles = settings.texts("substrings")
    if ignore_case:
        needles = [needle.casefold() for needle in needles]
    check = all if require == "all" else any

    def score(output: str) -> float:
        text = output.casefold() if ignore_case else output
        return _pass(check(needle in text for needle in needles))

    return _Built("pass_fail", False, _unreferenced(score))


def _not_contains(settings: _Settings) -> _Built:
    ignore_case = settings.flag("ignore_case", False)
    needles = settings.texts("substrings")
    if ignore_case:
        needles = [needle.casefold() for needle in needles]

    def score(output: str) -> float:
        text = output.casefold() if ignore_case else output
        return _pass(not any(needle in text for needle in needles))

    return _Built("pass_fail", False, _unreferenced(score))


def _label(settings: _Settings) -> _Built:
    ignore_case = settings.flag("ignore_case", True)
    pattern = settings.pattern("pattern", re.IGNORECASE if ignore_case else 0)
    mode = settings.choice("reference_mode", ("auto", "extract", "whole"), "auto")
    if "label" not in pattern.groupindex and pattern.groups != 1:
        raise InputError(
            "scorer label: pattern must have exactly one group, or a group named 'label', "
            f"to extract (it has {pattern.groups})"
        )

    def extract(text: str) -> str | None:
        found = pattern.search(text)
        if found is None:
            return None
        value = found.group("label") if "label" in pattern.groupindex else found.group(1)
        return None if value is None else normalise(value)

    def score(output: str, reference: str) -> float | None:
        want = normalise(reference) if mode == "whole" else extract(reference)
        if want is None:
            if mode == "extract":
                return None
            # auto: references are often the bare label ("positive") while outputs say
            # "Label: positive"; the whole reference then is the label.
            want = normalise(reference)
        got = extract(output)
        return _pass(got is not None and got == want)

    return _Built("pass_fail", True, _referenced(score))


def _json_valid(settings: _Settings) -> _Built:
    allow_fences = settings.flag("allow_fences", False)

    def score(output: str) -> float:
        return _pass(parse_json_output(output, allow_fences)[0])

    return _Built("pass_fail", False, _unreferenced(score))


def _load_schema(path_text: str) -> Any:
    path = Path(path_text).expanduser()
    if not path.exists():
        raise InputError(f"scorer json_schema: no schema file {path}")
    text = read_small_text(path, "scorer json_schema: schema file")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise InputError(f"scorer json_schema: cannot read {path} as JSON ({error})") from error


def _json_schema(settings: _Settings) -> _Built:
    allow_fences = settings.flag("allow_fences", False)
    path = settings.raw.get("schema_path", _MISSING)
    if path is not _MISSING and "schema" in settings.raw:
        raise InputError("scorer json_schema: give schema or schema_path, not both")
    if path is not _MISSING:
        if not isinstance(path, str) or not path:
            raise InputError("scorer json_schema: schema_path must be a file path")
        # The record keeps the schema itself, not the path: the file may change or vanish.
        settings.raw["schema"] = _load_schema(path)
        del settings.raw["schema_path"]
    schema = settings.raw.get("schema", _MISSING)
    if schema is _MISSING:
        raise InputError("scorer json_schema: schema (or schema_path) is required")
    try:
        check_schema(schema)
        settings.out["schema"] = json.loads(json.dumps(schema))
    except RecursionError as error:
        raise InputError("scorer json_schema: the schema is nested too deeply") from error

    def score(output: str) -> float:
        ok, value = parse_json_output(output, allow_fences)
        return _pass(ok and validate_json_schema(value, schema) is None)

    return _Built("pass_fail", False, _unreferenced(score))


def _bounds_check(family: str, low: float | None, high: float | None, what: str) -> None:
    if low is not None and high is not None and low > high:
        raise InputError(f"scorer {family}: min_{what} {low:g} is above max_{what} {high:g}")


def _length_bounds(settings: _Settings) -> _Built:
    min_chars, max_chars = settings.count("min_chars"), settings.count("max_chars")
    min_words, max_words = settings.count("min_words"), settings.count("max_words")
    if all(bound is None for bound in (min_chars, max_chars, min_words, max_words)):
        raise InputError(
            "scorer length_bounds: set at least one of min_chars, max_chars, min_words, max_words"
        )
    _bounds_check("length_bounds", min_chars, max_chars, "chars")
    _bounds_check("length_bounds", min_words, max_words, "words")

    def within(value: int, low: int | None, high: int | None) -> bool:
        return (low is None or value >= low) and (high is None or value <= high)

    def score(output: str) -> float:
        # Characters of the output less surrounding whitespace; words split on whitespace.
        chars, words = len(output.strip()), len(output.split())
        return _pass(within(chars, min_chars, max_chars) and within(words, min_words, max_words))

    return _Built("pass_fail", False, _unreferenced(score))


def _length(text: str, unit: str) -> int:
    return len(text.split()) if unit == "words" else len(text.strip())


def _verbosity_ratio(settings: _Settings) -> _Built:
    unit = settings.choice("unit", ("chars", "words"), "chars")

    def score(output: str, reference: str) -> float | None:
        size = _length(reference, unit)
        return None if size == 0 else _length(output, unit) / size

    return _Built("continuous", True, _referenced(score))


def _verbosity_bounds(settings: _Settings) -> _Built:
    unit = settings.choice("unit", ("chars", "words"), "chars")
    low, high = settings.number("min_ratio"), settings.number("max_ratio")
    if low is None and high is None:
        raise InputError("scorer verbosity_bounds: set min_ratio, max_ratio or both")
    _bounds_check("verbosity_bounds", low, high, "ratio")

    def score(output: str, reference: str) -> float | None:
        size = _length(reference, unit)
        if size == 0:
            return None
        ratio = _length(output, unit) / size
        return _pass((low is None or ratio >= low) and (high is None or ratio <= high))

    return _Built("pass_fail", True, _referenced(score))


def _refusal(settings: _Settings) -> _Built:
    sources = settings.texts("patterns", DEFAULT_REFUSAL_PATTERNS) + settings.texts(
        "extra_patterns", ()
    )
    window = settings.count("window")
    try:
        compiled = [re.compile(source, re.IGNORECASE) for source in sources]
    except re.error as error:
        raise InputError(f"scorer refusal: a pattern is not a valid regex ({error})") from error

    def score(output: str) -> float:
        text = output.translate(_APOSTROPHES)
        if window is not None:
            text = text[:window]
        return _pass(any(pattern.search(text) for pattern in compiled))

    return _Built("pass_fail", False, _unreferenced(score))


def _chrf(settings: _Settings) -> _Built:
    # Cost grows with char_order × output length; sacrebleu's default is 6, and n-grams past
    # 20 characters are whole words or phrases, which chrF is not meant to count.
    order = settings.count("char_order", low=1, high=MAX_CHAR_ORDER)
    if order is None:
        order = settings.out["char_order"] = 6
    beta = settings.number("beta", high=MAX_BETA)
    if beta is None:
        beta = settings.out["beta"] = 2.0
    whitespace = settings.flag("whitespace", False)
    lowercase = settings.flag("lowercase", False)
    return _Built(
        "continuous",
        True,
        _referenced(lambda out, ref: chrf_score(out, ref, order, beta, whitespace, lowercase)),
    )


def _rouge_l(settings: _Settings) -> _Built:
    casefold = settings.flag("casefold", False)
    return _Built(
        "continuous", True, _referenced(lambda out, ref: rouge_l_score(out, ref, casefold))
    )


def _custom(settings: _Settings) -> tuple[str, _Built]:
    registered = registered_scorer(settings.text("function"))
    name = registered.name
    # The decorator declares kind and needs_reference; a spec (an eval's record) may repeat
    # them, but a spec that disagrees would score under other rules than the author wrote.
    spec_kind = settings.choice("kind", SCORE_KINDS, registered.kind)
    spec_needs_reference = settings.flag("needs_reference", registered.needs_reference)
    if (spec_kind, spec_needs_reference) != (registered.kind, registered.needs_reference):
        raise InputError(
            f"scorer custom:{name}: the spec says kind={spec_kind}, needs_reference="
            f"{str(spec_needs_reference).lower()}, but {registered.source} registers it with "
            f"kind={registered.kind}, needs_reference={str(registered.needs_reference).lower()}"
        )
    kind, needs_reference, function = (
        registered.kind,
        registered.needs_reference,
        registered.function,
    )

    def score(output: str, ref: str | None, example: Mapping[str, Any]) -> float | None:
        try:
            result = function(output, ref, example)
        except Exception as error:  # user code: any failure is reported against the scorer
            raise InputError(
                f"scorer custom:{name} ({registered.source}) raised {type(error).__name__}: {error}"
            ) from error
        if result is None:
            return None
        if isinstance(result, bool):
            return _pass(result)
        if not isinstance(result, numbers.Real) or not math.isfinite(float(result)):
            raise InputError(
                f"scorer custom:{name} returned {result!r}; expected a bool, a finite number "
                "or None"
            )
        value = float(result)
        if kind == "pass_fail" and value not in (0.0, 1.0):
            raise InputError(
                f"scorer custom:{name} is pass_fail but returned {value:g}; return a bool, or "
                f'register it with @scorer("{name}", kind="continuous")'
            )
        return value

    return name, _Built(kind, needs_reference, score)


_FAMILIES: dict[str, Callable[[_Settings], _Built]] = {
    "exact": _exact,
    "normalised": _normalised,
    "regex": _regex,
    "contains": _contains,
    "not_contains": _not_contains,
    "label": _label,
    "json_valid": _json_valid,
    "json_schema": _json_schema,
    "length_bounds": _length_bounds,
    "verbosity_ratio": _verbosity_ratio,
    "verbosity_bounds": _verbosity_bounds,
    "refusal": _refusal,
    "chrf": _chrf,
    "rouge_l": _rouge_l,
}
KNOWN_SCORERS: tuple[str, ...] = (*_FAMILIES, "custom")
_ALIASES = {"normalized": "normalised"}


def load_scorer_files(paths: Sequence[Path]) -> tuple[RegisteredScorer, ...]:
    """Run the named scorer files; their `@scorer` functions become `custom:NAME`.

    Replaces the scorers registered before. A custom scorer may not take a built-in's name:
    its name is what evals store its scores under, beside the built-ins'.
    """
    return _load_scorer_files(paths, reserved=(*KNOWN_SCORERS, *_ALIASES))


# In a string spec "family:ARG", ARG is this one setting (so a pattern may contain ":", ","
# and "="); other families read ARG as key=value pairs separated by commas.
_PRIMARY = {
    "regex": "pattern",
    "contains": "substrings",
    "not_contains": "substrings",
    "label": "pattern",
    "json_schema": "schema_path",
    "custom": "function",
}


def _scalar(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text.strip()


def _parse_string_spec(spec: str) -> tuple[str, dict[str, Any]]:
    family, sep, argument = spec.strip().partition(":")
    family = _ALIASES.get(family.strip(), family.strip())
    if not sep:
        return family, {}
    if not argument:
        raise InputError(f"scorer spec {spec!r}: nothing after ':'")
    if family in _PRIMARY:
        return family, {_PRIMARY[family]: argument}
    settings: dict[str, Any] = {}
    for item in argument.split(","):
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise InputError(
                f"scorer spec {spec!r}: {family} takes key=value settings after ':' "
                f"(e.g. {family}:key=value), not {item!r}"
            )
        settings[key.strip()] = _scalar(value)
    return family, settings


def build_scorer(spec: str | Mapping[str, Any]) -> Scorer:
    """A scorer from a string or mapping spec; InputError names what is wrong with it."""
    alias: Any = None
    if isinstance(spec, str):
        family, raw = _parse_string_spec(spec)
    elif isinstance(spec, Mapping):
        raw = dict(spec)
        family = raw.pop("name", None)
        alias = raw.pop("as", None)
        if not isinstance(family, str):
            raise InputError(f"scorer spec {dict(spec)!r}: needs a name (one of the scorers)")
        family = _ALIASES.get(family, family)
    else:
        raise InputError(f"a scorer spec is a name or a mapping, not {spec!r}")
    if family not in KNOWN_SCORERS:
        raise InputError(f"unknown scorer {family!r}; known: {', '.join(KNOWN_SCORERS)}")
    if alias is not None and (not isinstance(alias, str) or not _NAME.fullmatch(alias)):
        raise InputError(f"scorer {family}: as must be a simple name, not {alias!r}")
    settings = _Settings(family, raw)
    if family == "custom":
        # A custom scorer is named after its registration: two of them need no `as`.
        own_name, built = _custom(settings)
    else:
        own_name, built = family, _FAMILIES[family](settings)
    name = alias or own_name
    return Scorer(
        name=name,
        family=family,
        kind=built.kind,
        needs_reference=built.needs_reference,
        settings=settings.finish(),
        function=built.function,
    )


def build_scorers(specs: Sequence[str | Mapping[str, Any]] | None) -> list[Scorer]:
    """Scorers for an eval; none named → the default `exact`. Names must be unique."""
    scorers = [build_scorer(spec) for spec in (specs or [DEFAULT_SCORER])]
    seen: set[str] = set()
    for built in scorers:
        if built.name in seen:
            raise InputError(
                f"two scorers are named {built.name!r}; give one a distinct name with 'as'"
            )
        seen.add(built.name)
    return scorers


def check_scorer_reference(reference: str) -> None:
    """InputError unless a gate rule's `family:ARG` scorer can be built; bare names pass.

    A bare name may be a scorer an eval stored (an `as` alias), which only the evals know; a
    spec with ':' is built here so that a gate naming unregistered code, or a bad setting,
    is refused before any scorer runs.
    """
    if ":" in reference or reference.strip() == "custom":
        build_scorer(reference)
