"""Every scorer on positive and negative cases, chrF/ROUGE-L by hand, custom scorers, bad specs."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.evals.scorers import (
    DEFAULT_SCORER,
    KNOWN_SCORERS,
    Scorer,
    build_scorer,
    build_scorers,
    chrf_score,
    lcs_length,
    load_scorer_files,
    normalise,
    registered_scorers,
    rouge_l_score,
    scorer,
    validate_json_schema,
)
from store.errors import InputError


def score(spec: str | dict[str, Any], output: str, reference: str | None = None) -> float | None:
    return build_scorer(spec).score(output, reference, {})


# -- exact / normalised ------------------------------------------------------------------------


def test_default_scorer_is_exact() -> None:
    assert DEFAULT_SCORER == "exact"
    (scorer,) = build_scorers(None)
    assert (scorer.name, scorer.kind, scorer.needs_reference) == ("exact", "pass_fail", True)


def test_exact_trims_surrounding_whitespace_only() -> None:
    assert score("exact", "  Paris\n", "Paris") == 1.0
    assert score("exact", "paris", "Paris") == 0.0
    assert score("exact", "Pa ris", "Paris") == 0.0
    assert score("exact", "Paris", None) is None


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("  PARIS. ", "paris", 1.0),
        ("Ｐａｒｉｓ", "paris", 1.0),  # full-width letters, NFKC
        ("the  city\tof paris", '"The city of Paris!"', 1.0),
        ("STRASSE", "straße", 1.0),  # casefold, not lower
        ("3.5", "35", 0.0),  # inner punctuation is kept
        ("Paris, France", "Paris", 0.0),
    ],
)
def test_normalised(output: str, reference: str, expected: float) -> None:
    assert score("normalised", output, reference) == expected
    assert score("normalized", output, reference) == expected


def test_normalise_helper() -> None:
    assert normalise("  ¡Hola,  MUNDO!  ") == "hola, mundo"
    assert normalise("...") == ""


# -- regex / contains / not_contains -----------------------------------------------------------


def test_regex() -> None:
    assert score(r"regex:\d{4}", "in 2024") == 1.0
    assert score(r"regex:^\d{4}$", "in 2024") == 0.0
    assert score({"name": "regex", "pattern": "refund"}, "REFUND issued") == 0.0
    assert score({"name": "regex", "pattern": "refund", "ignore_case": True}, "REFUND") == 1.0
    full = {"name": "regex", "pattern": r"\d+", "full_match": True}
    assert score(full, " 42\n") == 1.0
    assert score(full, "42 apples") == 0.0
    # the pattern after the first ':' is taken whole, colons and commas included
    assert score("regex:a:b,c", "xa:b,cx") == 1.0
    with pytest.raises(InputError, match="not a valid regex"):
        build_scorer("regex:(")


def test_contains_and_not_contains() -> None:
    assert score("contains:refund", "We issued a refund.") == 1.0
    assert score("contains:refund", "We issued a Refund.") == 0.0
    assert score({"name": "contains", "substrings": "refund", "ignore_case": True}, "REFUND") == 1.0
    both = {"name": "contains", "substrings": ["refund", "days"]}
    assert score(both, "a refund within 5 days") == 1.0
    assert score(both, "a refund soon") == 0.0
    assert score({**both, "require": "any"}, "a refund soon") == 1.0
    banned = {"name": "not_contains", "substrings": ["password", "SSN"]}
    assert score(banned, "Reset it from the settings page.") == 1.0
    assert score(banned, "Your password is hunter2") == 0.0
    assert score({**banned, "ignore_case": True}, "your ssn is ...") == 0.0
    assert score(banned, "your ssn is ...") == 1.0
    with pytest.raises(InputError, match="substrings"):
        build_scorer({"name": "contains", "substrings": []})


# -- label -------------------------------------------------------------------------------------


def test_label() -> None:
    spec = {"name": "label", "pattern": r"label:\s*(\w+)"}
    assert score(spec, "Reasoning... Label: Positive", "positive") == 1.0  # bare reference
    assert score(spec, "Label: positive", "label: POSITIVE") == 1.0
    assert score(spec, "Label: positive", "label: negative") == 0.0
    assert score(spec, "I think it is positive", "positive") == 0.0  # no label in output
    strict = {**spec, "reference_mode": "extract"}
    assert score(strict, "Label: positive", "positive") is None  # reference has no label
    named = {"name": "label", "pattern": r"(answer|label)\s*[:=]\s*(?P<label>[A-D])"}
    assert score(named, "answer = c", "C") == 1.0
    assert score(spec, "Label: positive", None) is None
    with pytest.raises(InputError, match="one group"):
        build_scorer({"name": "label", "pattern": r"label: \w+"})


# -- JSON --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('{"a": 1}', 1.0),
        ("  [1, 2, 3]\n", 1.0),
        ("42", 1.0),  # any JSON value is valid JSON
        ('{"a": NaN}', 0.0),  # Python accepts NaN; JSON does not
        ('{"a": Infinity}', 0.0),
        ('{"a": 1,}', 0.0),
        ("", 0.0),
        ('```json\n{"a": 1}\n```', 0.0),
        ('Here you go: {"a": 1}', 0.0),
    ],
)
def test_json_valid(output: str, expected: float) -> None:
    assert score("json_valid", output) == expected


def test_json_valid_fences_option() -> None:
    spec = {"name": "json_valid", "allow_fences": True}
    assert score(spec, '```json\n{"a": 1}\n```') == 1.0
    assert score(spec, "```\n[1]\n```") == 1.0
    assert score(spec, '```json\n{"a": }\n```') == 0.0


TICKET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["intent", "priority"],
    "additionalProperties": False,
    "properties": {
        "intent": {"type": "string", "enum": ["refund", "billing", "other"]},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
        "summary": {"type": "string", "minLength": 3, "maxLength": 40},
        "tags": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[a-z]+$"},
            "maxItems": 3,
        },
        "score": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "urgent": {"const": True},
    },
}
SCHEMA_INSTANCES: list[tuple[str, float]] = [
    ('{"intent": "refund", "priority": 2}', 1.0),
    ('{"intent": "refund", "priority": 2.0}', 1.0),  # 2.0 is an integer (draft 6+)
    ('{"intent": "refund", "priority": 2.5}', 0.0),
    ('{"intent": "refund", "priority": true}', 0.0),  # a boolean is not an integer
    ('{"intent": "refund"}', 0.0),
    ('{"intent": "cancel", "priority": 2}', 0.0),
    ('{"intent": "refund", "priority": 9}', 0.0),
    ('{"intent": "refund", "priority": 0}', 0.0),
    ('{"intent": "refund", "priority": 1, "extra": 1}', 0.0),
    ('{"intent": "refund", "priority": 1, "summary": "ok"}', 0.0),
    ('{"intent": "refund", "priority": 1, "summary": "' + "x" * 41 + '"}', 0.0),
    ('{"intent": "refund", "priority": 1, "tags": ["a", "b"]}', 1.0),
    ('{"intent": "refund", "priority": 1, "tags": ["a", "B"]}', 0.0),
    ('{"intent": "refund", "priority": 1, "tags": ["a", "b", "c", "d"]}', 0.0),
    ('{"intent": "refund", "priority": 1, "score": null}', 1.0),
    ('{"intent": "refund", "priority": 1, "score": 0}', 0.0),
    ('{"intent": "refund", "priority": 1, "urgent": true}', 1.0),
    ('{"intent": "refund", "priority": 1, "urgent": 1}', 0.0),  # true is not 1 in JSON
    ('["refund", 2]', 0.0),
    ("not json", 0.0),
]


@pytest.mark.parametrize(("output", "expected"), SCHEMA_INSTANCES)
def test_json_schema(output: str, expected: float) -> None:
    assert score({"name": "json_schema", "schema": TICKET_SCHEMA}, output) == expected


def test_json_schema_agrees_with_jsonschema_when_installed() -> None:
    jsonschema: Any = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(TICKET_SCHEMA)
    for output, _ in SCHEMA_INSTANCES:
        try:
            instance = json.loads(output)
        except ValueError:
            continue
        ours = validate_json_schema(instance, TICKET_SCHEMA) is None
        assert ours == validator.is_valid(instance), output


def test_json_schema_from_a_file_records_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "ticket.schema.json"
    path.write_text(json.dumps(TICKET_SCHEMA), encoding="utf-8")
    scorer = build_scorer(f"json_schema:{path}")
    assert scorer.spec() == {"name": "json_schema", "allow_fences": False, "schema": TICKET_SCHEMA}
    assert scorer.score('{"intent": "other", "priority": 5}', None, {}) == 1.0
    with pytest.raises(InputError, match="no schema file"):
        build_scorer(f"json_schema:{tmp_path / 'missing.json'}")


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"$ref": "#/defs/x"}, r"\$ref"),
        ({"anyOf": [{"type": "string"}]}, "anyOf"),
        ({"type": "text"}, "type must be one of"),
        ({"properties": {"a": {"oneOf": []}}}, r"properties\.a uses oneOf"),
        ({"items": [{"type": "string"}]}, "tuple form"),
        ({"minLength": -1}, "minLength"),
        ({"pattern": "("}, "not a valid regex"),
        ([1, 2], "must be an object"),
    ],
)
def test_json_schema_refuses_what_it_cannot_check(schema: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_scorer({"name": "json_schema", "schema": schema})


# -- length and verbosity ----------------------------------------------------------------------


def test_length_bounds() -> None:
    assert score("length_bounds:max_words=3", "one two three") == 1.0
    assert score("length_bounds:max_words=3", "one two three four") == 0.0
    spec = {"name": "length_bounds", "min_chars": 5, "max_chars": 10}
    assert score(spec, "  hello  ") == 1.0  # surrounding whitespace does not count
    assert score(spec, "hey") == 0.0
    assert score(spec, "hello world") == 0.0
    assert score("length_bounds:min_words=2,max_chars=20", "two words") == 1.0
    with pytest.raises(InputError, match="at least one"):
        build_scorer("length_bounds")
    with pytest.raises(InputError, match="above"):
        build_scorer({"name": "length_bounds", "min_words": 5, "max_words": 2})
    with pytest.raises(InputError, match="key=value"):
        build_scorer("length_bounds:3")


def test_verbosity_ratio_and_bounds() -> None:
    ratio = build_scorer("verbosity_ratio")
    assert ratio.kind == "continuous"
    assert ratio.score("abcd", "ab", {}) == 2.0
    assert ratio.score("abcd", "", {}) is None
    assert ratio.score("abcd", None, {}) is None
    assert score("verbosity_ratio:unit=words", "a b c", "a b c d e f") == 0.5
    bounds = {"name": "verbosity_bounds", "min_ratio": 0.5, "max_ratio": 2}
    assert score(bounds, "abc", "abcd") == 1.0
    assert score(bounds, "a" * 9, "abcd") == 0.0
    assert score(bounds, "a", "abcd") == 0.0
    with pytest.raises(InputError, match="min_ratio, max_ratio"):
        build_scorer("verbosity_bounds")


# -- refusal -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "refused"),
    [
        ("I'm sorry, but I can't help with that.", 1.0),
        ("I can’t assist with that request.", 1.0),  # curly apostrophe
        ("I cannot provide instructions for that.", 1.0),
        ("As an AI, I do not have opinions.", 1.0),
        ("I must decline this request.", 1.0),
        ("That would go against my guidelines.", 1.0),
        ("I am unable to share account details.", 1.0),
        ("I'm sorry to hear your order is late. I've issued a refund.", 0.0),
        ("Sure! Go to Settings > Security and choose Reset password.", 0.0),
        ("You cannot return opened items after 30 days.", 0.0),
    ],
)
def test_refusal_scores_one_when_refused(output: str, refused: float) -> None:
    scorer = build_scorer("refusal")
    assert (scorer.kind, scorer.needs_reference) == ("pass_fail", False)
    assert scorer.score(output, None, {}) == refused


def test_refusal_settings() -> None:
    extra = {"name": "refusal", "extra_patterns": [r"\bnot something I can do\b"]}
    assert score(extra, "Sorry, that's not something I can do.") == 1.0
    only = {"name": "refusal", "patterns": ["^no\\b"]}
    assert score(only, "No.") == 1.0
    assert score(only, "I cannot help with that.") == 0.0
    window = {"name": "refusal", "window": 20}
    assert score(window, "Here is the answer. " * 3 + "As an AI I add a note.") == 0.0


# -- chrF --------------------------------------------------------------------------------------


def test_chrf_hand_computed() -> None:
    # "ab" vs "abc": orders 1 and 2 are effective.
    #   1-grams P = 2/2, R = 2/3; 2-grams P = 1/1, R = 1/2 → P̄ = 1, R̄ = 7/12
    #   F2 = 5·P̄·R̄ / (4·P̄ + R̄) = (35/12) / (55/12) = 7/11
    assert chrf_score("ab", "abc") == pytest.approx(7 / 11)
    # swapped: P̄ = 7/12, R̄ = 1 → F2 = (35/12) / (40/12) = 7/8 (recall weighs more)
    assert chrf_score("abc", "ab") == pytest.approx(7 / 8)
    assert chrf_score("a b", "ab") == 1.0  # whitespace is dropped
    assert chrf_score("xyz", "abc") == 0.0
    assert chrf_score("", "") == 0.0
    scorer = build_scorer("chrf")
    assert scorer.kind == "continuous"
    assert scorer.settings == {
        "char_order": 6,
        "beta": 2.0,
        "whitespace": False,
        "lowercase": False,
    }
    assert scorer.score("ab", "abc", {}) == pytest.approx(7 / 11)
    assert scorer.score("ab", None, {}) is None


def test_chrf_matches_sacrebleu_when_installed() -> None:
    metrics: Any = pytest.importorskip("sacrebleu.metrics")
    chrf = metrics.CHRF()
    words = [
        "the",
        "cat",
        "sat",
        "on",
        "a",
        "mat",
        "ran",
        "quickly,",
        "Hello",
        "world.",
        "café",
        "😀",
    ]
    rng = random.Random(7)
    for _ in range(500):
        hypothesis = " ".join(rng.choice(words) for _ in range(rng.randint(0, 9)))
        reference = " ".join(rng.choice(words) for _ in range(rng.randint(0, 9)))
        want = chrf.sentence_score(hypothesis, [reference]).score / 100
        assert chrf_score(hypothesis, reference) == pytest.approx(want, abs=1e-12)


# -- ROUGE-L -----------------------------------------------------------------------------------


def test_rouge_l_hand_computed() -> None:
    # LCS "the cat on the mat" = 5 of 6 tokens each side → P = R = F = 5/6
    assert rouge_l_score("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    # LCS "a c" = 2: P = 2/4, R = 2/2 → F1 = 2·½·1 / 1½ = 2/3
    assert rouge_l_score("a b c d", "a c") == pytest.approx(2 / 3)
    assert rouge_l_score("The Cat", "the cat") == 0.0
    assert rouge_l_score("The Cat", "the cat", casefold=True) == 1.0
    assert rouge_l_score("", "the cat") == 0.0
    assert score("rouge_l", "a b c d", "a c") == pytest.approx(2 / 3)
    assert score("rouge_l:casefold=true", "The Cat", "the cat") == 1.0


def _lcs_table(first: list[str], second: list[str]) -> int:
    table = [[0] * (len(second) + 1) for _ in range(len(first) + 1)]
    for i, x in enumerate(first):
        for j, y in enumerate(second):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
            )
    return table[-1][-1]


def test_lcs_matches_the_textbook_table() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        first = [rng.choice("abcd") for _ in range(rng.randint(0, 14))]
        second = [rng.choice("abcde") for _ in range(rng.randint(0, 14))]
        assert lcs_length(first, second) == _lcs_table(first, second)


# -- custom ------------------------------------------------------------------------------------

CUSTOM_FILE = """
from core.evals.scorers import scorer

@scorer("polite")
def polite(output, reference, example):
    return "please" in output.lower()

@scorer("overlap", kind="continuous")
def overlap(output, reference, example):
    return 0.25 if example.get("lang") == "en" else None

@scorer("overlap_pass_fail")
def overlap_pass_fail(output, reference, example):
    return 0.25

@scorer("broken")
def broken(output, reference, example):
    raise RuntimeError("boom")

@scorer("wordy")
def wordy(output, reference, example):
    return "yes"

def unmarked(output, reference, example):
    return True
"""


@pytest.fixture
def custom_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "ftod_test_custom_scorers.py"
    path.write_text(CUSTOM_FILE, encoding="utf-8")
    yield path
    load_scorer_files([])  # the registry is per process: leave none behind for other tests


def test_custom_scorer(custom_file: Path) -> None:
    registered = load_scorer_files([custom_file])
    assert [entry.name for entry in registered] == [
        "polite",
        "overlap",
        "overlap_pass_fail",
        "broken",
        "wordy",
    ]
    polite = build_scorer("custom:polite")
    assert (polite.name, polite.family, polite.kind) == ("polite", "custom", "pass_fail")
    assert polite.score("Please hold.", None, {}) == 1.0
    assert polite.score("Hold.", None, {}) == 0.0
    overlap = build_scorer({"name": "custom", "function": "overlap", "as": "ov"})
    assert (overlap.name, overlap.kind) == ("ov", "continuous")
    assert overlap.score("x", "y", {"lang": "en"}) == 0.25
    assert overlap.score("x", "y", {"lang": "de"}) is None
    assert overlap.spec() == {
        "name": "custom",
        "as": "ov",
        "function": "overlap",
        "kind": "continuous",
        "needs_reference": False,
    }
    assert build_scorer(overlap.spec()) == overlap
    # Two custom scorers are told apart by their registered names, no `as` needed.
    assert [built.name for built in build_scorers(["custom:polite", "custom:wordy"])] == [
        "polite",
        "wordy",
    ]


def test_custom_scorer_errors_name_the_scorer(custom_file: Path) -> None:
    load_scorer_files([custom_file])
    with pytest.raises(InputError, match=r"overlap_pass_fail is pass_fail but returned 0\.25"):
        build_scorer("custom:overlap_pass_fail").score("x", None, {})
    with pytest.raises(InputError, match=r"custom:broken .* raised RuntimeError: boom"):
        build_scorer("custom:broken").score("x", None, {})
    with pytest.raises(InputError, match="returned 'yes'"):
        build_scorer("custom:wordy").score("x", None, {})
    with pytest.raises(InputError, match="registers it with kind=continuous"):
        build_scorer({"name": "custom", "function": "overlap", "kind": "pass_fail"})
    with pytest.raises(InputError, match=r"'unmarked' is not registered \(registered: broken"):
        build_scorer("custom:unmarked")
    with pytest.raises(InputError, match=r"no longer imports module:function.*--scorer-file"):
        build_scorer(f"custom:{custom_file.stem}:polite")


def test_a_file_without_the_decorator_registers_nothing(tmp_path: Path) -> None:
    plain = tmp_path / "plain.py"
    plain.write_text("def polite(output, reference, example):\n    return True\n")
    try:
        assert load_scorer_files([plain]) == ()
        assert registered_scorers() == ()
        with pytest.raises(InputError, match=r"not registered \(.*plain.py register no scorer"):
            build_scorer("custom:polite")
    finally:
        load_scorer_files([])


def test_the_decorator_outside_a_scorer_file_registers_nothing() -> None:
    # The user's own tests may import their scorer module; that must not make it a scorer.
    @scorer("imported_elsewhere")
    def imported_elsewhere(output: str, reference: str | None, example: Any) -> bool:
        return True

    assert imported_elsewhere("x", None, {}) is True
    assert registered_scorers() == ()
    with pytest.raises(InputError, match="no scorer file was named"):
        build_scorer("custom:imported_elsewhere")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("scorer('run')(exec)", "only a function defined in the scorer file itself"),
        ("import shutil\nscorer('rm')(shutil.rmtree)", "not <function rmtree"),
        ("import os.path\nscorer('j')(os.path.join)", "builtins and library functions"),
        ("scorer('exact')(lambda o, r, e: True)", "'exact' is the name of a built-in scorer"),
        ("scorer('custom')(lambda o, r, e: True)", "name of a built-in scorer"),
        ("scorer('a:b')", "a scorer name is a letter"),
        ("scorer('k', kind='binary')", "kind must be one of pass_fail, continuous"),
        ("def f(o, r, e): pass\nscorer('twice')(f)\nscorer('twice')(f)", "twice"),
        ("raise RuntimeError('at import')", r"failed to load \(RuntimeError: at import\)"),
        ("def broken(:", r"failed to load \(SyntaxError"),
    ],
)
def test_scorer_files_that_are_refused(tmp_path: Path, source: str, message: str) -> None:
    path = tmp_path / "refused.py"
    path.write_text(f"from core.evals.scorers import scorer\n{source}\n")
    with pytest.raises(InputError, match=message) as caught:
        load_scorer_files([path])
    assert caught.value.exit_code == 2
    assert registered_scorers() == ()


def test_scorer_file_paths_that_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "folder.py"
    folder.mkdir()
    fifo = tmp_path / "fifo.py"
    os.mkfifo(fifo)
    text = tmp_path / "scorers.txt"
    text.write_text("x = 1\n")
    for path, message in [
        (tmp_path / "missing.py", "no such file"),
        (folder, "not a regular file"),
        (fifo, "not a regular file"),
        (text, r"not a Python file \(name it \*\.py\)"),
    ]:
        with pytest.raises(InputError, match=message):
            load_scorer_files([path])


def test_one_name_from_two_files_is_refused(tmp_path: Path) -> None:
    body = "from core.evals.scorers import scorer\n@scorer('same')\ndef f(o, r, e):\n    return 1\n"
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    first.write_text(body)
    second.write_text(body)
    with pytest.raises(InputError, match=r"'same' is registered by both .*first.py and .*second"):
        load_scorer_files([first, second])


# -- specs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bleu", "unknown scorer 'bleu'; known: exact, normalised"),
        ({"name": "bleu"}, "known: .*rouge_l, custom"),
        ("exact:foo", "key=value"),
        ("exact:case=true", r"unknown setting\(s\) case"),
        ("regex:", "nothing after"),
        ({"name": "regex"}, "pattern is required"),
        ({"name": "regex", "pattern": "x", "flags": "i"}, r"unknown setting\(s\) flags"),
        ({"name": "contains", "substrings": "a", "ignore_case": "yes"}, "true or false"),
        ({"name": "chrf", "char_order": 0}, "at least 1"),
        ({"pattern": "x"}, "needs a name"),
        ({"name": "exact", "as": "has space"}, "simple name"),
        (3, "a name or a mapping"),
    ],
)
def test_bad_specs(spec: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_scorer(spec)


ROUND_TRIP_SPECS: list[str | dict[str, Any]] = [
    "exact",
    "normalised",
    r"regex:\d+",
    "contains:refund",
    "not_contains:password",
    {"name": "label", "pattern": r"label: (\w+)"},
    "json_valid",
    {"name": "json_schema", "schema": {"type": "object"}},
    "length_bounds:max_words=50",
    "verbosity_ratio",
    {"name": "verbosity_bounds", "max_ratio": 1.5},
    "refusal",
    "chrf",
    "rouge_l",
]


@pytest.mark.parametrize("spec", ROUND_TRIP_SPECS, ids=str)
def test_spec_round_trips_and_is_json(spec: str | dict[str, Any]) -> None:
    scorer = build_scorer(spec)
    record = scorer.spec()
    assert json.loads(json.dumps(record)) == record
    rebuilt = build_scorer(record)
    assert rebuilt == scorer
    assert isinstance(rebuilt, Scorer)


def test_every_known_scorer_is_covered() -> None:
    covered = {build_scorer(spec).family for spec in ROUND_TRIP_SPECS} | {"custom"}
    assert covered == set(KNOWN_SCORERS)


def test_build_scorers_needs_unique_names() -> None:
    scorers = build_scorers(["exact", {"name": "contains", "substrings": "a", "as": "has_a"}])
    assert [scorer.name for scorer in scorers] == ["exact", "has_a"]
    with pytest.raises(InputError, match="two scorers are named 'contains'"):
        build_scorers(["contains:a", "contains:b"])


def test_output_must_be_text() -> None:
    with pytest.raises(InputError, match="must be text"):
        build_scorer("json_valid").score(None, None, {})  # type: ignore[arg-type]
