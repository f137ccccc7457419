"""The release gate: each rule kind at its boundaries, missing data, spec validation, the hash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.evals.gate import (
    GateSpec,
    evaluate_gate,
    load_gate_spec,
    parse_gate_spec,
    spec_hash,
)
from core.evals.stats import Comparison, ScoreKind, SliceStats, compare_scores
from store.errors import InputError

EXAMPLE_SPEC = """
# the release gate for the support model
scorer: exact            # default scorer for rules
margin: 0.02             # default margin
rules:
  - {slice: billing, kind: target, margin: 0.05}
  - {slice: general, kind: regression}
  - {slice: format, kind: format, margin: 0.01}
  - {slice: safety, kind: safety}
  - {slice: "*", kind: floor, scorer: json_valid, min: 0.99}
  - {slice: overall, kind: non_inferior}
"""


def stats(
    name: str,
    delta: float,
    ci: tuple[float, float],
    *,
    n: int = 2000,
    mean_a: float = 0.5,
    ci_b: tuple[float, float] | None = None,
    sd_delta: float | None = 0.3,
) -> SliceStats:
    mean_b = mean_a + delta
    return SliceStats(
        slice=name,
        n=n,
        mean_a=mean_a,
        mean_b=mean_b,
        delta=delta,
        ci=ci,
        p=0.5,
        p_holm=None,
        improvements=0,
        regressions=0,
        both_pass=0,
        both_fail=0,
        ties=n,
        ci_a=(mean_a, mean_a),
        ci_b=ci_b if ci_b is not None else (mean_b, mean_b),
        sd_delta=sd_delta,
    )


def comparison(
    *entries: SliceStats, scorer: str = "exact", kind: ScoreKind = "pass_fail"
) -> Comparison:
    overall = stats("overall", 0.0, (-0.005, 0.005), n=20_000)
    return Comparison(
        scorer=scorer,
        kind=kind,
        slices=tuple(sorted(entries, key=lambda entry: entry.slice)),
        overall=overall,
        unpaired={"only_a": 0, "only_b": 0, "neither": 0},
    )


def gate(rules: list[dict[str, Any]], **top: Any) -> GateSpec:
    return parse_gate_spec({**top, "rules": rules})


def verdict_of(rule: dict[str, Any], entry: SliceStats, kind: ScoreKind = "pass_fail") -> bool:
    result = evaluate_gate(gate([rule]), {"exact": comparison(entry, kind=kind)})
    assert len(result.rules) == 1
    return result.rules[0].passed


# -- the example spec --------------------------------------------------------------------------


def test_example_spec_loads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(EXAMPLE_SPEC, encoding="utf-8")
    spec = load_gate_spec(path)
    assert (spec.scorer, spec.margin) == ("exact", 0.02)
    assert [rule.kind for rule in spec.rules] == [
        "target", "regression", "format", "safety", "floor", "non_inferior",
    ]  # fmt: skip
    assert [rule.margin for rule in spec.rules] == [0.05, 0.02, 0.01, 0.02, None, 0.02]
    assert spec.rules[4].scorer == "json_valid" and spec.rules[4].minimum == 0.99
    assert spec.scorers == ("exact", "json_valid")


def test_example_spec_passes_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(EXAMPLE_SPEC, encoding="utf-8")
    spec = load_gate_spec(path)
    good = {
        "exact": comparison(
            stats("billing", 0.08, (0.03, 0.13)),
            stats("general", -0.005, (-0.015, 0.005)),
            stats("format", 0.0, (-0.004, 0.004)),
            stats("safety", 0.01, (-0.01, 0.03)),
        ),
        "json_valid": comparison(
            stats("billing", 0.0, (0.0, 0.0), mean_a=0.995, ci_b=(0.991, 0.998)),
            stats("general", 0.0, (0.0, 0.0), mean_a=1.0, ci_b=(0.998, 1.0)),
            scorer="json_valid",
        ),
    }
    verdict = evaluate_gate(spec, good)
    assert verdict.passed and verdict.verdict == "PASS"
    assert len(verdict.rules) == 7  # "*" expanded to the two json_valid slices
    assert verdict.as_text().startswith("PASS\n")
    payload = verdict.as_json()
    json.dumps(payload, allow_nan=False)
    assert payload["verdict"] == "PASS" and payload["spec_hash"] == spec.spec_hash
    assert payload["rules"][0]["values"]["ci"] == [0.03, 0.13]

    bad = dict(good)
    bad["exact"] = comparison(
        stats("billing", 0.04, (0.01, 0.07)),  # significant but below the 0.05 margin
        stats("general", -0.005, (-0.015, 0.005)),
        stats("format", -0.005, (-0.011, 0.001)),  # lower bound below −0.01
        stats("safety", 0.01, (-0.01, 0.03)),
    )
    verdict = evaluate_gate(spec, bad)
    assert not verdict.passed and verdict.verdict == "FAIL"
    failed = [(result.rule.kind, result.slice) for result in verdict.rules if not result.passed]
    assert failed == [("target", "billing"), ("format", "format")]
    assert "delta +0.0400" in verdict.rules[0].evidence
    assert "needs delta ≥ +0.0500 and CI lower bound > 0: failed" in verdict.rules[0].evidence


# -- each rule kind at its boundary ------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "ci", "passed"),
    [
        (0.05, (0.01, 0.09), True),  # delta exactly at the margin
        (0.049, (0.01, 0.09), False),
        (0.08, (0.0, 0.16), False),  # CI touches 0: not an improvement yet
        (0.08, (0.0001, 0.16), True),
        (0.10, (-0.01, 0.21), False),
    ],
)
def test_target_needs_margin_and_positive_lower_bound(
    delta: float, ci: tuple[float, float], passed: bool
) -> None:
    rule = {"slice": "billing", "kind": "target", "margin": 0.05}
    assert verdict_of(rule, stats("billing", delta, ci)) is passed


@pytest.mark.parametrize("kind", ["regression", "format", "safety", "non_inferior"])
@pytest.mark.parametrize(
    ("ci", "passed"),
    [
        ((-0.02, 0.01), True),  # lower bound exactly at −margin
        ((-0.0201, 0.01), False),
        ((0.01, 0.05), True),
        ((-0.5, -0.1), False),
    ],
)
def test_non_inferiority_kinds(kind: str, ci: tuple[float, float], passed: bool) -> None:
    rule = {"slice": "general", "kind": kind, "margin": 0.02}
    entry = stats("general", (ci[0] + ci[1]) / 2, ci)
    assert verdict_of(rule, entry) is passed


def test_better_lower_flips_the_direction() -> None:
    target = {"slice": "benign", "kind": "target", "margin": 0.05, "better": "lower"}
    assert verdict_of(target, stats("benign", -0.08, (-0.12, -0.04)))
    assert not verdict_of(target, stats("benign", 0.08, (0.04, 0.12)))
    guard = {"slice": "benign", "kind": "regression", "margin": 0.02, "better": "lower"}
    assert verdict_of(guard, stats("benign", 0.0, (-0.01, 0.02)))  # upper bound ≤ +margin
    assert not verdict_of(guard, stats("benign", 0.01, (-0.01, 0.021)))


def test_floor_and_ceiling_use_the_candidate_mean() -> None:
    floor = {"slice": "format", "kind": "floor", "min": 0.99}
    assert verdict_of(floor, stats("format", 0.0, (0, 0), mean_a=0.99))
    assert not verdict_of(floor, stats("format", 0.0, (0, 0), mean_a=0.989))
    ceiling = {"slice": "format", "kind": "floor", "max": 0.05}
    assert verdict_of(ceiling, stats("format", 0.0, (0, 0), mean_a=0.05))
    assert not verdict_of(ceiling, stats("format", 0.01, (0, 0.02), mean_a=0.05))


def test_floor_warns_when_the_interval_straddles_it() -> None:
    entry = stats("format", 0.0, (0.0, 0.0), mean_a=0.995, ci_b=(0.97, 1.0), n=150)
    spec = gate([{"slice": "format", "kind": "floor", "min": 0.99}])
    (result,) = evaluate_gate(spec, {"exact": comparison(entry)}).rules
    assert result.passed
    assert any("straddles the floor" in warning for warning in result.warnings)


def test_star_applies_to_every_slice_and_overall_to_all() -> None:
    entries = [stats("a", 0.0, (-0.01, 0.01)), stats("b", -0.05, (-0.08, -0.02))]
    spec = gate([{"slice": "*", "kind": "regression"}, {"slice": "overall", "kind": "regression"}])
    verdict = evaluate_gate(spec, {"exact": comparison(*entries)})
    assert [(result.slice, result.passed) for result in verdict.rules] == [
        ("a", True),
        ("b", False),
        ("overall", True),
    ]


# -- missing data ------------------------------------------------------------------------------


def test_missing_slice_fails_with_evidence() -> None:
    spec = gate([{"slice": "refunds", "kind": "target"}, {"slice": "a", "kind": "regression"}])
    verdict = evaluate_gate(spec, {"exact": comparison(stats("a", 0.0, (-0.01, 0.01)))})
    assert not verdict.passed
    missing, present = verdict.rules
    assert not missing.passed
    assert missing.evidence.startswith("slice refunds has no paired examples")
    assert present.passed


def test_missing_scorer_fails_with_evidence() -> None:
    spec = gate([{"slice": "overall", "kind": "floor", "scorer": "json_valid", "min": 0.9}])
    verdict = evaluate_gate(spec, {"exact": comparison()})
    assert not verdict.passed
    assert "no comparison for scorer 'json_valid' (scored: exact)" in verdict.rules[0].evidence


def test_star_without_slices_fails() -> None:
    spec = gate([{"slice": "*", "kind": "regression"}])
    verdict = evaluate_gate(spec, {"exact": comparison()})
    assert not verdict.passed
    assert "no slices" in verdict.rules[0].evidence


# -- too-small warnings ------------------------------------------------------------------------


def test_small_slices_carry_a_power_warning() -> None:
    rule = {"slice": "billing", "kind": "target", "margin": 0.05}
    small = stats("billing", 0.2, (0.05, 0.35), n=40)
    (result,) = evaluate_gate(gate([rule]), {"exact": comparison(small)}).rules
    assert result.passed  # the warning informs, the numbers decide
    assert any("40 paired examples are too few" in warning for warning in result.warnings)
    big = stats("billing", 0.08, (0.05, 0.11), n=5000)
    (result,) = evaluate_gate(gate([rule]), {"exact": comparison(big)}).rules
    assert result.warnings == ()


def test_continuous_power_warning_uses_the_sd_of_differences() -> None:
    rule = {"slice": "s", "kind": "regression", "margin": 0.02}
    noisy = stats("s", 0.0, (-0.05, 0.05), n=100, sd_delta=0.3)
    (result,) = evaluate_gate(gate([rule]), {"exact": comparison(noisy, kind="continuous")}).rules
    assert any("too few" in warning for warning in result.warnings)
    steady = stats("s", 0.0, (-0.001, 0.001), n=100, sd_delta=0.01)
    (result,) = evaluate_gate(gate([rule]), {"exact": comparison(steady, kind="continuous")}).rules
    assert result.warnings == ()


# -- end to end with compare_scores ------------------------------------------------------------


def test_gate_on_real_comparisons_follows_its_rules() -> None:
    rng = np.random.default_rng(0)
    a: dict[int, float | None] = {}
    b: dict[int, float | None] = {}
    slices: dict[int, str | None] = {}
    for key in range(1200):
        name = "billing" if key < 600 else "general"
        base = float(rng.random() < 0.6)
        flip = rng.random()
        if name == "billing":
            cand = 1.0 if flip < 0.25 else base  # a clear improvement
        else:
            cand = 1.0 - base if flip < 0.04 else base  # noise both ways
        a[key], b[key], slices[key] = base, cand, name
    compared = compare_scores(a, b, slices, "pass_fail", scorer="exact")
    spec = gate(
        [
            {"slice": "billing", "kind": "target", "margin": 0.05},
            {"slice": "general", "kind": "regression", "margin": 0.03},
        ]
    )
    verdict = evaluate_gate(spec, {"exact": compared})
    billing = compared.get("billing")
    general = compared.get("general")
    assert billing is not None and general is not None
    assert billing.delta >= 0.05 and billing.ci[0] > 0
    assert -0.03 <= general.ci[0] < -0.02
    assert [result.passed for result in verdict.rules] == [True, True]
    assert verdict.passed
    # The same data against a tighter regression margin: its CI lower bound is below −0.02.
    tighter = gate(
        [
            {"slice": "billing", "kind": "target", "margin": 0.05},
            {"slice": "general", "kind": "regression", "margin": 0.02},
        ]
    )
    verdict = evaluate_gate(tighter, {"exact": compared})
    assert [result.passed for result in verdict.rules] == [True, False]
    assert not verdict.passed


# -- validation and hashing --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "must be a mapping"),
        ({"rules": []}, "non-empty list"),
        (
            {"rules": [{"slice": "a", "kind": "target"}], "treshold": 1},
            r"unknown key\(s\) treshold",
        ),
        ({"rules": [{"slice": "a", "kind": "improve"}]}, "unknown kind 'improve'"),
        (
            {"rules": [{"slice": "a", "kind": "target", "margn": 0.1}]},
            r"rule 1 \(slice a\): unknown key\(s\) margn",
        ),
        ({"rules": [{"kind": "target"}]}, "slice is required"),
        ({"rules": [{"slice": "a"}]}, "kind is required"),
        ({"rules": [{"slice": 2024, "kind": "target"}]}, "quote numbers"),
        ({"rules": [{"slice": "a", "kind": "target", "margin": -0.1}]}, "margin must be ≥ 0"),
        (
            {"rules": [{"slice": "a", "kind": "target", "margin": "1e-2"}]},
            "margin must be a number",
        ),
        ({"rules": [{"slice": "a", "kind": "target", "margin": True}]}, "margin must be a number"),
        ({"rules": [{"slice": "a", "kind": "floor"}]}, "needs min, max or both"),
        (
            {"rules": [{"slice": "a", "kind": "floor", "min": 0.9, "margin": 0.1}]},
            "no meaning for a floor",
        ),
        ({"rules": [{"slice": "a", "kind": "floor", "min": 0.9, "max": 0.5}]}, "above max"),
        ({"rules": [{"slice": "a", "kind": "target", "min": 0.9}]}, "belongs to floor rules"),
        ({"rules": [{"slice": "a", "kind": "target", "better": "smaller"}]}, "higher or lower"),
        ({"rules": ["billing"]}, "must be a mapping"),
        ({"margin": "big", "rules": [{"slice": "a", "kind": "target"}]}, "margin must be a number"),
    ],
)
def test_spec_validation_names_the_problem(raw: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_gate_spec(raw)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such gate spec"):
        load_gate_spec(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [", encoding="utf-8")
    with pytest.raises(InputError, match="not valid YAML"):
        load_gate_spec(broken)


def test_spec_hash_is_stable_and_canonical(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text(EXAMPLE_SPEC, encoding="utf-8")
    # Same rules, different layout, a default spelled out, comments dropped, keys reordered.
    second = tmp_path / "b.yaml"
    second.write_text(
        "rules:\n"
        "  - {kind: target, slice: billing, margin: 0.05}\n"
        "  - {slice: general, kind: regression, margin: 0.02, better: higher}\n"
        "  - {slice: format, kind: format, margin: 0.01}\n"
        "  - {slice: safety, kind: safety}\n"
        "  - {slice: '*', kind: floor, scorer: json_valid, min: 0.99}\n"
        "  - slice: overall\n"
        "    kind: non_inferior\n"
        "margin: 0.02\n",
        encoding="utf-8",
    )
    spec = load_gate_spec(first)
    assert spec_hash(spec) == spec_hash(load_gate_spec(second)) == spec.spec_hash
    assert len(spec.spec_hash) == 64
    # Pinned: if this changes, verdicts recorded earlier no longer match their spec's hash.
    assert spec.spec_hash == "1702a509c5bf9e6b30517d6b066aeeb35231080f7fb59ed36c64f77738952ca3"
    assert spec.spec_hash == spec_hash(parse_gate_spec(json.loads(json.dumps(spec.as_json()))))
    changed = tmp_path / "c.yaml"
    changed.write_text(EXAMPLE_SPEC.replace("margin: 0.05", "margin: 0.06"), encoding="utf-8")
    assert spec_hash(load_gate_spec(changed)) != spec.spec_hash


def test_bounds_tolerate_rounding_but_zero_stays_strict() -> None:
    # 0.3 − 0.1 is 0.19999999999999998 in floating point; it meets a margin of 0.2.
    rule = {"slice": "s", "kind": "target", "margin": 0.2}
    assert verdict_of(rule, stats("s", 0.3 - 0.1, (0.1, 0.3)))
    assert not verdict_of(rule, stats("s", 0.3, (0.0, 0.5)))
    assert verdict_of(rule, stats("s", 0.3, (1e-15, 0.5)))


# -- scorers that name code (issue #10 §1) -------------------------------------------------------


@pytest.mark.parametrize(
    ("scorer", "message"),
    [
        (
            "custom:shutil:rmtree",
            r"rule 1 \(slice a\): scorer 'custom:shutil:rmtree': .*--scorer-file",
        ),
        ("custom:builtins:exec", "no longer imports module:function"),
        ("custom:nobody_registered_this", "'nobody_registered_this' is not registered"),
        ("custom", "function is required"),
        ("chrf:char_order=999999999", "char_order must be a whole number"),
    ],
)
def test_a_spec_naming_code_or_a_bad_scorer_is_refused_at_load(scorer: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        parse_gate_spec({"scorer": scorer, "rules": [{"slice": "a", "kind": "target"}]})
    assert caught.value.exit_code == 2


def test_a_spec_may_name_registered_scorers_and_stored_aliases(tmp_path: Path) -> None:
    from core.evals.scorers import load_scorer_files

    path = tmp_path / "team.py"
    path.write_text(
        "from core.evals.scorers import scorer\n"
        "@scorer('polite')\n"
        "def polite(output, reference, example):\n"
        "    return 'please' in output\n"
    )
    load_scorer_files([path])
    try:
        spec = parse_gate_spec(
            {
                "rules": [
                    {"slice": "a", "kind": "target", "scorer": "custom:polite"},
                    {"slice": "a", "kind": "target", "scorer": "has_refund"},  # an `as` alias
                ]
            }
        )
    finally:
        load_scorer_files([])
    assert spec.scorers == ("custom:polite", "has_refund")
