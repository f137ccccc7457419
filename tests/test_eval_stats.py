"""Eval statistics against scipy/statsmodels on fixed data, and the paired comparison."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from core.evals import stats
from core.evals.stats import (
    compare_scores,
    holm_adjust,
    mcnemar_exact_p,
    paired_bootstrap_delta_ci,
    paired_permutation_p,
    required_pairs,
    too_small_for_margin,
    wilson_interval,
)
from store.errors import InputError

scipy_stats: Any = pytest.importorskip("scipy.stats")

WILSON_CASES = [
    (successes, n)
    for n in (1, 2, 5, 10, 37, 100, 1000, 12345)
    for successes in sorted({0, 1, n // 3, n // 2, n - 1, n})
]
MCNEMAR_CASES = [
    (0, 0),
    (0, 1),
    (1, 0),
    (3, 3),
    (5, 1),
    (1, 20),
    (3, 12),
    (17, 30),
    (200, 260),
    (100, 3),
    (9000, 9400),  # exact integer path, large
    (12000, 12400),  # log-space path (n > 20,000)
]


def _wilson_reference(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """The Wilson formula with scipy's normal quantile, for when statsmodels is absent."""
    z = float(scipy_stats.norm.isf((1 - confidence) / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# -- Wilson ------------------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
@pytest.mark.parametrize(("successes", "n"), WILSON_CASES)
def test_wilson_matches_statsmodels(successes: int, n: int, confidence: float) -> None:
    proportion: Any = pytest.importorskip("statsmodels.stats.proportion")
    want = proportion.proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    got = wilson_interval(successes, n, confidence)
    assert got == pytest.approx(want, abs=1e-12)
    assert got == pytest.approx(_wilson_reference(successes, n, confidence), abs=1e-12)


def test_wilson_fixed_values() -> None:
    # statsmodels 0.15 proportion_confint(..., method="wilson"), printed to 16 digits.
    assert wilson_interval(7, 20) == pytest.approx((0.18119182410108203, 0.5671457233147638))
    assert wilson_interval(0, 12) == pytest.approx((0.0, 0.24249400665524096))
    assert wilson_interval(50, 50, 0.9) == pytest.approx((0.9486668142137298, 1.0))


@pytest.mark.parametrize(("successes", "n"), [(0, 0), (3, 2), (-1, 5), (1, -1)])
def test_wilson_rejects_impossible_counts(successes: int, n: int) -> None:
    with pytest.raises(InputError):
        wilson_interval(successes, n)


def test_wilson_rejects_bad_confidence() -> None:
    with pytest.raises(InputError, match="confidence"):
        wilson_interval(3, 10, 1.5)


# -- McNemar -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("b01", "b10"), MCNEMAR_CASES)
def test_mcnemar_exact_matches_scipy_binomtest(b01: int, b10: int) -> None:
    total = b01 + b10
    want = 1.0 if total == 0 else scipy_stats.binomtest(b01, total, 0.5).pvalue
    assert mcnemar_exact_p(b01, b10) == pytest.approx(want, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("b01", "b10"), MCNEMAR_CASES)
def test_mcnemar_exact_matches_statsmodels(b01: int, b10: int) -> None:
    tables: Any = pytest.importorskip("statsmodels.stats.contingency_tables")
    want = tables.mcnemar([[40, b01], [b10, 25]], exact=True).pvalue
    assert mcnemar_exact_p(b01, b10) == pytest.approx(want, rel=1e-9, abs=1e-300)


def test_mcnemar_fixed_values() -> None:
    # 2·P(X ≤ 3), X ~ Bin(15, ½) = 2·(1 + 15 + 105 + 455) / 2**15
    assert mcnemar_exact_p(3, 12) == 2 * 576 / 32768 == 0.03515625
    assert mcnemar_exact_p(12, 3) == 0.03515625
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(4, 4) == 1.0
    assert mcnemar_exact_p(0, 10) == 2 / 1024


def test_mcnemar_rejects_negative_counts() -> None:
    with pytest.raises(InputError):
        mcnemar_exact_p(-1, 3)


# -- Holm --------------------------------------------------------------------------------------

HOLM_CASES = [
    [0.01, 0.04, 0.03, 0.005],
    [0.01, 0.04, 0.03, 0.2, 0.005, 0.04, 0.9],
    [0.5],
    [],
    [0.0, 1.0, 0.0001, 0.3, 0.3],
    [0.6, 0.7, 0.8],
]


def test_holm_fixed_values() -> None:
    # sorted: .005·4 = .02, .01·3 = .03, .03·2 = .06, .04·1 = .04 → running max .06
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.6, 0.7]) == [1.0, 1.0]


@pytest.mark.parametrize("pvalues", HOLM_CASES)
def test_holm_matches_statsmodels(pvalues: list[float]) -> None:
    multitest: Any = pytest.importorskip("statsmodels.stats.multitest")
    if not pvalues:
        assert holm_adjust(pvalues) == []
        return
    want = multitest.multipletests(pvalues, method="holm")[1]
    assert holm_adjust(pvalues) == pytest.approx(list(want), abs=1e-15)


def test_holm_rejects_out_of_range() -> None:
    with pytest.raises(InputError):
        holm_adjust([0.1, 1.2])


# -- bootstrap ---------------------------------------------------------------------------------


def test_bootstrap_is_deterministic_and_order_free() -> None:
    values = np.random.default_rng(3).normal(0.5, 0.2, 300)
    first = stats.bootstrap_mean_ci(values, seed=7)
    assert stats.bootstrap_mean_ci(values, seed=7) == first
    assert stats.bootstrap_mean_ci(values[::-1].copy(), seed=7) == first
    assert stats.bootstrap_mean_ci(values, seed=8) != first
    assert first[0] < float(values.mean()) < first[1]


def test_bootstrap_agrees_with_scipy_percentile_bootstrap() -> None:
    rng = np.random.default_rng(11)
    for values in (rng.normal(0.3, 1.0, 200), (rng.random(400) < 0.7).astype(float)):
        ours = stats.bootstrap_mean_ci(values, resamples=20_000)
        theirs = scipy_stats.bootstrap(
            (values,), np.mean, method="percentile", n_resamples=20_000, random_state=1
        ).confidence_interval
        width = theirs.high - theirs.low
        assert ours[0] == pytest.approx(theirs.low, abs=0.03 * width)
        assert ours[1] == pytest.approx(theirs.high, abs=0.03 * width)


@pytest.mark.parametrize("kind", ["bernoulli", "continuous"])
def test_bootstrap_coverage_is_near_nominal(kind: str) -> None:
    rng = np.random.default_rng(2024)
    truth = 0.3
    covered = 0
    trials = 300
    for trial in range(trials):
        if kind == "bernoulli":
            sample = (rng.random(120) < truth).astype(float)
        else:
            sample = rng.beta(3, 7, 120)  # mean 0.3, bounded and skewed like a score
        low, high = stats.bootstrap_mean_ci(sample, resamples=2000, seed=trial)
        covered += low <= truth <= high
    assert 0.90 <= covered / trials <= 0.99


def test_bootstrap_of_constant_values_is_that_value() -> None:
    assert stats.bootstrap_mean_ci([1.0] * 30) == (1.0, 1.0)


def test_bootstrap_rejects_empty_and_nan() -> None:
    with pytest.raises(InputError):
        stats.bootstrap_mean_ci([])
    with pytest.raises(InputError):
        stats.bootstrap_mean_ci([0.1, math.nan])


def test_paired_bootstrap_is_the_bootstrap_of_differences() -> None:
    rng = np.random.default_rng(5)
    a = (rng.random(150) < 0.5).astype(float)
    b = np.where(rng.random(150) < 0.2, 1.0 - a, a)
    assert paired_bootstrap_delta_ci(a, b, seed=3) == stats.bootstrap_mean_ci(b - a, seed=3)
    with pytest.raises(InputError, match="same examples"):
        paired_bootstrap_delta_ci([1.0, 0.0], [1.0])


def test_paired_bootstrap_is_narrower_than_unpaired() -> None:
    # Strongly correlated scores: pairing must use that, not treat a and b as independent.
    rng = np.random.default_rng(9)
    a = rng.random(200)
    b = a + 0.02 + rng.normal(0, 0.01, 200)
    low, high = paired_bootstrap_delta_ci(a, b)
    assert 0.0 < low < 0.02 < high
    assert high - low < 0.01


# -- permutation test --------------------------------------------------------------------------


def _mean_difference(x: Any, y: Any, axis: int = -1) -> Any:
    return np.mean(y - x, axis=axis)


@pytest.mark.parametrize("n", [3, 8, 12, 16])
def test_permutation_exact_matches_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    a = rng.random(n)
    b = a + rng.normal(0.1, 0.3, n)
    want = scipy_stats.permutation_test(
        (a, b),
        _mean_difference,
        permutation_type="samples",
        n_resamples=np.inf,
        vectorized=True,
    ).pvalue
    assert paired_permutation_p(a, b) == pytest.approx(want, rel=1e-12)


def test_permutation_sampled_is_close_to_scipy_and_deterministic() -> None:
    rng = np.random.default_rng(60)
    a = rng.random(60)
    b = a + rng.normal(0.05, 0.3, 60)
    ours = paired_permutation_p(a, b, resamples=20_000)
    assert paired_permutation_p(a, b, resamples=20_000) == ours
    theirs = scipy_stats.permutation_test(
        (a, b),
        _mean_difference,
        permutation_type="samples",
        n_resamples=20_000,
        vectorized=True,
        random_state=1,
    ).pvalue
    assert ours == pytest.approx(theirs, abs=0.01)


def test_permutation_without_differences_is_one() -> None:
    assert paired_permutation_p([0.2, 0.4], [0.2, 0.4]) == 1.0


# -- power -------------------------------------------------------------------------------------


def test_required_pairs_by_hand() -> None:
    # p = 0.8, δ = 0.05 → q = 0.85, ψ = 0.8·0.15 + 0.85·0.2 = 0.29
    z_a, z_b = 1.959963984540054, 0.8416212335729143
    by_hand = (z_a * math.sqrt(0.29) + z_b * math.sqrt(0.29 - 0.05**2)) ** 2 / 0.05**2
    assert required_pairs(0.05, 0.8) == math.ceil(by_hand) == 909
    # p + δ > 1: the change is taken downwards, q = 1 − δ, ψ = δ
    assert required_pairs(0.02, 1.0) == 391


def test_required_pairs_shrink_with_the_margin() -> None:
    needs = [required_pairs(margin, 0.7) for margin in (0.01, 0.02, 0.05, 0.1, 0.2)]
    assert needs == sorted(needs, reverse=True)
    assert too_small_for_margin(100, 0.05, 0.7)
    assert not too_small_for_margin(5000, 0.05, 0.7)
    with pytest.raises(InputError):
        required_pairs(0.0, 0.5)


# -- compare_scores ----------------------------------------------------------------------------


def _hand_built() -> tuple[dict[str, float | None], dict[str, float | None], dict[str, str]]:
    billing_a = [0, 0, 0, 1, 1, 0]
    billing_b = [1, 1, 1, 1, 0, 0]  # 3 improvements, 1 regression, 1 both pass, 1 both fail
    general_a = [1, 1, 1, 1, 0]
    general_b = [1, 1, 1, 0, 0]  # 1 regression, 3 both pass, 1 both fail
    a: dict[str, float | None] = {}
    b: dict[str, float | None] = {}
    slices: dict[str, str] = {}
    for index, (x, y) in enumerate(zip(billing_a, billing_b, strict=True)):
        a[f"b{index}"], b[f"b{index}"], slices[f"b{index}"] = float(x), float(y), "billing"
    for index, (x, y) in enumerate(zip(general_a, general_b, strict=True)):
        a[f"g{index}"], b[f"g{index}"], slices[f"g{index}"] = float(x), float(y), "general"
    a["only_a"] = 1.0  # missing from b
    a["none_in_b"], b["none_in_b"] = 0.0, None
    b["only_b"] = 1.0
    a["neither"], b["neither"] = None, None
    a["unsliced"], b["unsliced"] = 1.0, 1.0
    slices.update(only_a="billing", only_b="general", none_in_b="billing")
    return a, b, slices


def test_compare_scores_counts_on_a_hand_built_example() -> None:
    a, b, slices = _hand_built()
    comparison = compare_scores(a, b, slices, "pass_fail", scorer="exact")
    assert [entry.slice for entry in comparison.slices] == ["billing", "general"]
    billing, general = comparison.slices
    assert (billing.n, billing.improvements, billing.regressions) == (6, 3, 1)
    assert (billing.both_pass, billing.both_fail, billing.ties) == (1, 1, 2)
    assert billing.mean_a == pytest.approx(2 / 6)
    assert billing.mean_b == pytest.approx(4 / 6)
    assert billing.delta == pytest.approx(2 / 6)
    assert billing.p == pytest.approx(2 * 5 / 16)  # McNemar 3 vs 1
    assert billing.ci_a == wilson_interval(2, 6)
    assert billing.ci_b == wilson_interval(4, 6)
    assert billing.ci[0] <= billing.delta <= billing.ci[1]
    assert (general.n, general.improvements, general.regressions) == (5, 0, 1)
    assert (general.both_pass, general.both_fail) == (3, 1)
    assert general.p == 1.0
    # Holm over the two slices: min(1, 2·0.625) then max(…, 1·1.0)
    assert (billing.p_holm, general.p_holm) == (1.0, 1.0)
    overall = comparison.overall
    assert overall.slice == "overall"
    assert (overall.n, overall.improvements, overall.regressions) == (12, 3, 2)
    assert (overall.both_pass, overall.both_fail) == (5, 2)
    assert overall.p == pytest.approx(mcnemar_exact_p(3, 2))
    assert overall.p_holm is None
    assert comparison.unpaired == {"only_a": 2, "only_b": 1, "neither": 1}
    assert any("2 examples scored only in A and 1 only in B" in w for w in overall.warnings)
    assert any("no slice" in warning for warning in overall.warnings)
    assert all("only 6 paired examples" not in w for w in general.warnings)
    assert any("only 5 paired examples" in w for w in general.warnings)
    assert comparison.get("billing") is billing
    assert comparison.get("overall") is overall
    assert comparison.get("refunds") is None


def test_compare_scores_holm_matches_statsmodels() -> None:
    multitest: Any = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(1)
    a: dict[int, float | None] = {}
    b: dict[int, float | None] = {}
    slices: dict[int, str | None] = {}
    for key in range(600):
        name = f"s{key % 4}"
        flip = 0.1 + 0.05 * (key % 4)
        a[key] = float(rng.random() < 0.6)
        improve = rng.random() < flip
        b[key] = 1.0 if improve else float(a[key] or 0.0)
        slices[key] = name
    comparison = compare_scores(a, b, slices, "pass_fail")
    ps = [entry.p for entry in comparison.slices]
    assert all(p is not None for p in ps)
    want = multitest.multipletests(ps, method="holm")[1]
    assert [entry.p_holm for entry in comparison.slices] == pytest.approx(list(want))


def test_compare_scores_json_shape_and_no_nan() -> None:
    a, b, slices = _hand_built()
    payload = compare_scores(a, b, slices, "pass_fail", scorer="exact").as_json()
    text = json.dumps(payload, allow_nan=False)
    assert "NaN" not in text
    assert set(payload) == {"slices", "overall", "scorer", "kind", "unpaired"}
    assert payload["scorer"] == "exact" and payload["kind"] == "pass_fail"
    entry_keys = {
        "slice", "n", "mean_a", "mean_b", "delta", "ci", "p", "p_holm", "improvements",
        "regressions", "both_pass", "both_fail", "ties", "ci_a", "ci_b", "warnings",
    }  # fmt: skip
    for entry in [*payload["slices"], payload["overall"]]:
        assert set(entry) == entry_keys
        assert len(entry["ci"]) == 2
    assert payload["overall"]["p_holm"] is None


def test_compare_scores_is_deterministic_and_order_free() -> None:
    a, b, slices = _hand_built()
    first = compare_scores(a, b, slices, "pass_fail").as_json()
    reversed_a = dict(reversed(list(a.items())))
    assert compare_scores(reversed_a, b, slices, "pass_fail").as_json() == first


def test_compare_scores_continuous() -> None:
    rng = np.random.default_rng(4)
    a = {key: float(rng.random()) for key in range(40)}
    b: dict[int, float | None] = {key: value + 0.1 for key, value in a.items()}
    b[0] = a[0]  # one tie
    b[1] = (a[1] or 0.0) - 0.5  # one regression
    comparison = compare_scores(a, b, None, "continuous", scorer="chrf")
    overall = comparison.overall
    assert comparison.slices == ()
    assert (overall.improvements, overall.regressions, overall.ties) == (38, 1, 1)
    assert overall.both_pass is None and overall.both_fail is None
    assert overall.p is not None and overall.p < 0.01
    assert overall.ci_a[0] < overall.mean_a < overall.ci_a[1]
    json.dumps(comparison.as_json(), allow_nan=False)


def test_compare_scores_margin_warning() -> None:
    a = {key: float(key % 2) for key in range(40)}
    b = dict(a)
    comparison = compare_scores(a, b, None, "pass_fail", margin=0.02)
    assert any("too few to detect a change of 0.02" in w for w in comparison.overall.warnings)


@pytest.mark.parametrize(
    ("a", "b", "kind", "message"),
    [
        ({"x": 1.0}, {"y": 1.0}, "pass_fail", "no example is scored in both"),
        ({"x": 0.5}, {"x": 1.0}, "pass_fail", "pass/fail scores are 0 or 1"),
        ({"x": math.nan}, {"x": 1.0}, "continuous", "nan"),
        ({"x": "1"}, {"x": 1.0}, "continuous", "not a number"),
        ({"x": 1.0}, {"x": 1.0}, "ordinal", "unknown score kind"),
    ],
)
def test_compare_scores_rejects_unusable_input(
    a: dict[str, Any], b: dict[str, Any], kind: Any, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        compare_scores(a, b, None, kind)


def test_compare_scores_reserves_overall() -> None:
    with pytest.raises(InputError, match="reserved"):
        compare_scores({"x": 1.0}, {"x": 1.0}, {"x": "overall"}, "pass_fail")
