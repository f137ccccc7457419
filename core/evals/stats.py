"""Statistics for comparing two evals run on the same examples.

numpy and the standard library only: the runtime must not need scipy or statsmodels, so the
few distributions used here are written out, and the tests check each number against
scipy/statsmodels on fixed data. Every resampling function takes a seed and sorts its input
first, so a report is reproducible bit for bit and does not depend on the order in which the
examples were read.

Conventions used throughout:

* A "pair" is one example scored by both evals; `a` is the baseline, `b` the candidate, and
  every delta is b − a (positive = the candidate scores higher).
* Pass/fail scores are 0.0 or 1.0; continuous scores are any finite float.
* Intervals are two-sided at `confidence` (0.95 unless told).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from store.errors import InputError

ScoreKind = Literal["pass_fail", "continuous"]
SCORE_KINDS: tuple[ScoreKind, ...] = ("pass_fail", "continuous")

OVERALL = "overall"
"""The name of the all-examples entry; a slice may not use it (the gate names it)."""

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 10_000
DEFAULT_POWER = 0.8

FEW_PAIRS = 10
"""Below this many pairs a percentile bootstrap visibly under-covers; the entry says so."""

EXACT_PERMUTATION_MAX_N = 16
"""Up to 2**16 sign patterns are enumerated exactly; above that they are sampled."""

_EXACT_BINOMIAL_MAX_N = 20_000
# Resampling works on (rows × n) blocks; this caps a block at ~16 MiB of float64 so a
# 100k-example eval does not try to allocate 10_000 × 100_000 numbers at once.
_BLOCK_CELLS = 1 << 21
# With few distinct values (always so for pass/fail) drawing multinomial counts per distinct
# value is equivalent to resampling indices and much cheaper; with many distinct values the
# per-category binomial draws cost more than plain index resampling.
_MULTINOMIAL_MAX_DISTINCT = 64

K = TypeVar("K", bound=Hashable)
FloatArray = NDArray[np.float64]


# -- small helpers -----------------------------------------------------------------------------


def _check_confidence(confidence: float) -> None:
    if not (isinstance(confidence, int | float) and 0.0 < confidence < 1.0):
        raise InputError(f"confidence must be between 0 and 1 (exclusive), not {confidence!r}")


def _check_resamples(resamples: int) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise InputError(f"resamples must be a positive whole number, not {resamples!r}")


def _z(confidence: float) -> float:
    """The two-sided normal critical value, e.g. 1.959964 for 0.95."""
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def _vector(values: Iterable[float] | FloatArray, what: str) -> FloatArray:
    array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    array = array.astype(np.float64, copy=False)
    if array.ndim != 1:
        raise InputError(f"{what}: expected a flat list of numbers")
    if array.size == 0:
        raise InputError(f"{what}: no values")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{what}: every value must be a finite number")
    return array


def _finite_or_none(value: float | None) -> float | None:
    # JSON has no NaN/Infinity; a reader gets null rather than an unparsable file.
    if value is None or not math.isfinite(value):
        return None
    return float(value)


# -- intervals ---------------------------------------------------------------------------------


def wilson_interval(
    successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """The Wilson score interval for a pass rate (as statsmodels `method="wilson"`).

    Chosen over the normal (Wald) interval because it stays inside [0, 1] and keeps its
    coverage at rates near 0 or 1, which is where format and safety pass rates live.
    """
    _check_confidence(confidence)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"a Wilson interval needs at least one trial, not n={n!r}")
    if isinstance(successes, bool) or not isinstance(successes, int) or not 0 <= successes <= n:
        raise InputError(f"successes must be a whole number in [0, {n}], not {successes!r}")
    z = _z(confidence)
    z2 = z * z
    rate = successes / n
    denom = 1.0 + z2 / n
    centre = (rate + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(rate * (1.0 - rate) / n + z2 / (4.0 * n * n)) / denom
    # Rounding can leave the bound at -1e-17 when successes is 0; statsmodels clips too.
    return max(0.0, centre - half), min(1.0, centre + half)


def _bootstrap_means(values: FloatArray, resamples: int, seed: int) -> FloatArray:
    """Means of `resamples` bootstrap resamples (with replacement, same size) of `values`."""
    rng = np.random.default_rng(seed)
    ordered = np.sort(values)
    n = ordered.size
    distinct, counts = np.unique(ordered, return_counts=True)
    if distinct.size == 1:
        return np.full(resamples, distinct[0])
    means = np.empty(resamples, dtype=np.float64)
    if distinct.size <= _MULTINOMIAL_MAX_DISTINCT:
        # Resampling n values with replacement draws each distinct value a
        # Multinomial(n, count/n) number of times, so this is the same bootstrap distribution.
        probabilities = counts / n
        rows = max(1, _BLOCK_CELLS // distinct.size)
        for start in range(0, resamples, rows):
            stop = min(resamples, start + rows)
            drawn = rng.multinomial(n, probabilities, size=stop - start)
            means[start:stop] = drawn @ distinct / n
        return means
    rows = max(1, _BLOCK_CELLS // n)
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        picks = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = ordered[picks].mean(axis=1)
    return means


def bootstrap_mean_ci(
    values: Sequence[float] | FloatArray,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean.

    The (1−c)/2 and (1+c)/2 quantiles (numpy's default linear interpolation) of the means of
    `resamples` resamples. Percentile rather than BCa: it needs no jackknife, is easy to
    explain in a report, and at eval sizes (hundreds of examples) the two agree closely.
    With all values equal the interval is that value on both sides.
    """
    _check_confidence(confidence)
    _check_resamples(resamples)
    array = _vector(values, "bootstrap")
    means = _bootstrap_means(array, resamples, seed)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_bootstrap_delta_ci(
    a: Sequence[float] | FloatArray,
    b: Sequence[float] | FloatArray,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval for mean(b − a) over paired examples.

    Resampling the per-example differences (not a and b independently) keeps the pairing:
    the two models' scores on one example are correlated, and ignoring that would give a
    much wider interval than the data support.
    """
    first = _vector(a, "paired bootstrap (a)")
    second = _vector(b, "paired bootstrap (b)")
    if first.size != second.size:
        raise InputError(
            f"paired bootstrap needs the same examples on both sides, got {first.size} "
            f"and {second.size} scores"
        )
    return bootstrap_mean_ci(second - first, confidence, resamples, seed)


# -- tests -------------------------------------------------------------------------------------


def _binomial_half_cdf(k: int, n: int) -> float:
    """P(X ≤ k) for X ~ Binomial(n, 1/2), with k ≤ n / 2."""
    if n <= _EXACT_BINOMIAL_MAX_N:
        # Exact integer arithmetic; int / int rounds once, correctly.
        coefficient, exact_total = 1, 1
        for i in range(k):
            coefficient = coefficient * (n - i) // (i + 1)
            exact_total += coefficient
        return exact_total / (1 << n)
    # Too many bits for comfort: sum downwards from the largest term (i = k, as k ≤ n/2),
    # in units of that term, and scale once in log space.
    log_top = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2)
    term_ratio, total = 1.0, 1.0
    for i in range(k, 0, -1):
        term_ratio *= i / (n - i + 1)
        total += term_ratio
        if term_ratio < 1e-17 * total:
            break
    return math.exp(log_top + math.log(total))


def mcnemar_exact_p(b01: int, b10: int) -> float:
    """Exact two-sided McNemar p-value from the two discordant counts.

    Under "no difference" each discordant pair is equally likely to go either way, so the
    smaller count is Binomial(b01 + b10, 1/2): p = min(1, 2·P(X ≤ min(b01, b10))), as
    statsmodels `mcnemar(table, exact=True)`. No discordant pairs → p = 1.
    """
    for count in (b01, b10):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InputError(f"McNemar counts must be whole numbers ≥ 0, not {count!r}")
    total = b01 + b10
    if total == 0:
        return 1.0
    return min(1.0, 2.0 * _binomial_half_cdf(min(b01, b10), total))


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order (as statsmodels `method="holm"`).

    Used across slices: with a dozen slices one of them will look "significant" by chance,
    and Holm controls that family-wise error without Bonferroni's loss of power.
    """
    values = [float(p) for p in pvalues]
    for p in values:
        if not 0.0 <= p <= 1.0:
            raise InputError(f"p-values must be in [0, 1], not {p!r}")
    m = len(values)
    order = sorted(range(m), key=lambda index: values[index])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * values[index]))
        adjusted[index] = running
    return adjusted


def paired_permutation_p(
    a: Sequence[float] | FloatArray,
    b: Sequence[float] | FloatArray,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> float:
    """Two-sided paired sign-flip permutation p-value for mean(b − a) = 0.

    Under "no difference" each example's difference is as likely to be +d as −d, so the
    p-value is the share of sign patterns whose |mean| reaches the observed |mean|. All 2**n
    patterns are enumerated for n ≤ EXACT_PERMUTATION_MAX_N (the same value as scipy's
    `permutation_test(..., permutation_type="samples")`); above that, `resamples` random
    patterns give (1 + hits) / (1 + resamples), which is never 0 and so never overstates.
    Used for continuous scores instead of a t-test because eval scores are bounded and lumpy.
    """
    _check_resamples(resamples)
    first = _vector(a, "permutation test (a)")
    second = _vector(b, "permutation test (b)")
    if first.size != second.size:
        raise InputError("a permutation test needs the same examples on both sides")
    differences = np.sort(second - first)
    n = differences.size
    observed = abs(float(differences.sum()))
    if observed == 0.0:
        return 1.0
    # scipy's tolerance: sums equal up to rounding count as reaching the observed value.
    threshold = observed - 100 * np.finfo(np.float64).eps * observed
    if n <= EXACT_PERMUTATION_MAX_N:
        patterns = np.arange(1 << n)[:, None] >> np.arange(n)[None, :] & 1
        signs = 1.0 - 2.0 * patterns
        hits = int(np.count_nonzero(np.abs(signs @ differences) >= threshold))
        return hits / (1 << n)
    rng = np.random.default_rng(seed)
    rows = max(1, _BLOCK_CELLS // n)
    hits = 0
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        signs = 1.0 - 2.0 * rng.integers(0, 2, size=(stop - start, n))
        hits += int(np.count_nonzero(np.abs(signs @ differences) >= threshold))
    return (1 + hits) / (1 + resamples)


# -- power -------------------------------------------------------------------------------------


def required_pairs(
    margin: float,
    baseline_rate: float,
    alpha: float = 1.0 - DEFAULT_CONFIDENCE,
    power: float = DEFAULT_POWER,
) -> int:
    """Approximate pairs needed to detect a pass-rate change of `margin` (Connor, 1987).

    For paired pass/fail scores with discordance ψ = P(a ≠ b) and true difference δ:
    n = (z_{1−α/2}·√ψ + z_{power}·√(ψ − δ²))² / δ².
    ψ is unknown before the run, so it is taken as if a and b were independent given the
    rates (baseline p, candidate q = p + δ, or p − δ where p + δ > 1): ψ = p(1−q) + q(1−p),
    never below δ. Two models on the same prompts agree more than independent ones do, so
    the real ψ is usually smaller and this errs towards warning. The same n serves a
    non-inferiority margin, whose CI bound must clear −margin when the truth is 0.
    """
    if not (math.isfinite(margin) and margin > 0):
        raise InputError(f"a power calculation needs a margin > 0, not {margin!r}")
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise InputError("alpha and power must be between 0 and 1")
    delta = min(1.0, margin)
    p = min(1.0, max(0.0, baseline_rate))
    q = p + delta if p + delta <= 1.0 else max(0.0, p - delta)
    psi = max(delta, p * (1.0 - q) + q * (1.0 - p))
    z_alpha = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    z_power = NormalDist().inv_cdf(power)
    root = z_alpha * math.sqrt(psi) + z_power * math.sqrt(max(0.0, psi - delta * delta))
    return math.ceil(root * root / (delta * delta))


def required_pairs_continuous(
    margin: float,
    sd_delta: float,
    alpha: float = 1.0 - DEFAULT_CONFIDENCE,
    power: float = DEFAULT_POWER,
) -> int:
    """Approximate pairs to detect a mean change of `margin` given the SD of the differences.

    The normal approximation n = ((z_{1−α/2} + z_{power})·sd / margin)²; the SD comes from
    the observed differences, so it is a rough, after-the-fact guide.
    """
    if not (math.isfinite(margin) and margin > 0):
        raise InputError(f"a power calculation needs a margin > 0, not {margin!r}")
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise InputError("alpha and power must be between 0 and 1")
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0) + NormalDist().inv_cdf(power)
    return max(1, math.ceil((z * sd_delta / margin) ** 2))


def too_small_for_margin(
    n: int,
    margin: float,
    baseline_rate: float,
    alpha: float = 1.0 - DEFAULT_CONFIDENCE,
    power: float = DEFAULT_POWER,
) -> bool:
    """Whether n pass/fail pairs are fewer than `required_pairs` for this margin."""
    return n < required_pairs(margin, baseline_rate, alpha, power)


def margin_warning(
    stats: SliceStats,
    kind: ScoreKind,
    margin: float,
    alpha: float = 1.0 - DEFAULT_CONFIDENCE,
    power: float = DEFAULT_POWER,
) -> str | None:
    """A sentence when `stats` has too few pairs to resolve `margin`, else None.

    Pass/fail uses `required_pairs` with the baseline's observed rate; continuous uses
    `required_pairs_continuous` with the observed SD of the differences. A margin of 0 has no
    finite sample size and gets no warning (the CI alone decides).
    """
    if margin <= 0:
        return None
    if kind == "pass_fail":
        needed = required_pairs(margin, stats.mean_a, alpha, power)
    elif stats.sd_delta is None:
        needed = 2
    else:
        needed = required_pairs_continuous(margin, stats.sd_delta, alpha, power)
    if stats.n >= needed:
        return None
    return (
        f"slice {stats.slice!r}: {stats.n} paired examples are too few to detect a change of "
        f"{margin:g} (about {needed} needed for {power:.0%} power at alpha {alpha:g}), so this "
        "result is weak evidence either way"
    )


# -- comparing two evals -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SliceStats:
    """Paired statistics for one slice (or "overall"): candidate b against baseline a.

    `ci` is the paired bootstrap interval of `delta` for both kinds of score (for pass/fail
    too: it needs no normal approximation and agrees with the exact McNemar test in
    direction). `ci_a` / `ci_b` are each side's own mean interval: Wilson for pass/fail,
    bootstrap for continuous. For continuous scores `improvements` / `regressions` count
    b > a / b < a, `both_pass` / `both_fail` are None and `ties` counts b == a.
    """

    slice: str
    n: int
    mean_a: float
    mean_b: float
    delta: float
    ci: tuple[float, float]
    p: float | None
    p_holm: float | None
    improvements: int
    regressions: int
    both_pass: int | None
    both_fail: int | None
    ties: int
    ci_a: tuple[float, float]
    ci_b: tuple[float, float]
    sd_delta: float | None
    """Sample SD of the differences (n − 1 denominator); None below two pairs."""
    warnings: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "slice": self.slice,
            "n": self.n,
            "mean_a": _finite_or_none(self.mean_a),
            "mean_b": _finite_or_none(self.mean_b),
            "delta": _finite_or_none(self.delta),
            "ci": [_finite_or_none(self.ci[0]), _finite_or_none(self.ci[1])],
            "p": _finite_or_none(self.p),
            "p_holm": _finite_or_none(self.p_holm),
            "improvements": self.improvements,
            "regressions": self.regressions,
            "both_pass": self.both_pass,
            "both_fail": self.both_fail,
            "ties": self.ties,
            "ci_a": [_finite_or_none(self.ci_a[0]), _finite_or_none(self.ci_a[1])],
            "ci_b": [_finite_or_none(self.ci_b[0]), _finite_or_none(self.ci_b[1])],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """Baseline a against candidate b under one scorer, per slice and overall."""

    scorer: str
    kind: ScoreKind
    slices: tuple[SliceStats, ...]
    """Sorted by slice name; only slices with at least one pair appear."""
    overall: SliceStats
    unpaired: Mapping[str, int]
    """only_a / only_b: scored on one side only; neither: present but scored on neither."""
    confidence: float = DEFAULT_CONFIDENCE

    def get(self, name: str) -> SliceStats | None:
        """The named slice, or the overall entry for "overall"; None when it has no pairs."""
        if name == OVERALL:
            return self.overall
        for stats in self.slices:
            if stats.slice == name:
                return stats
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "scorer": self.scorer,
            "kind": self.kind,
            "slices": [stats.as_json() for stats in self.slices],
            "overall": self.overall.as_json(),
            "unpaired": dict(self.unpaired),
        }


def _check_score(value: object, kind: ScoreKind, key: Hashable, side: str, scorer: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float | np.floating | np.integer):
        raise InputError(f"scorer {scorer}: the score of {key!r} in {side} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"scorer {scorer}: the score of {key!r} in {side} is {number}")
    if kind == "pass_fail" and number not in (0.0, 1.0):
        raise InputError(
            f"scorer {scorer} is pass/fail but the score of {key!r} in {side} is {number:g}; "
            "pass/fail scores are 0 or 1"
        )
    return number


def _slice_stats(
    name: str,
    a: FloatArray,
    b: FloatArray,
    kind: ScoreKind,
    confidence: float,
    resamples: int,
    seed: int,
    margin: float | None,
) -> SliceStats:
    n = int(a.size)
    differences = b - a
    improvements = int(np.count_nonzero(b > a))
    regressions = int(np.count_nonzero(b < a))
    ties = n - improvements - regressions
    # Every slice uses the same seed, so adding a slice never moves another slice's numbers.
    ci = bootstrap_mean_ci(differences, confidence, resamples, seed)
    both_pass: int | None
    both_fail: int | None
    if kind == "pass_fail":
        passes_a, passes_b = int(a.sum()), int(b.sum())
        both_pass = int(np.count_nonzero((a == 1.0) & (b == 1.0)))
        both_fail = ties - both_pass
        p: float | None = mcnemar_exact_p(improvements, regressions)
        ci_a = wilson_interval(passes_a, n, confidence)
        ci_b = wilson_interval(passes_b, n, confidence)
    else:
        both_pass = both_fail = None
        p = paired_permutation_p(a, b, resamples, seed)
        ci_a = bootstrap_mean_ci(a, confidence, resamples, seed)
        ci_b = bootstrap_mean_ci(b, confidence, resamples, seed)
    stats = SliceStats(
        slice=name,
        n=n,
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        delta=float(differences.mean()),
        ci=ci,
        p=p,
        p_holm=None,
        improvements=improvements,
        regressions=regressions,
        both_pass=both_pass,
        both_fail=both_fail,
        ties=ties,
        ci_a=ci_a,
        ci_b=ci_b,
        sd_delta=float(differences.std(ddof=1)) if n >= 2 else None,
    )
    warnings: list[str] = []
    if n < FEW_PAIRS:
        warnings.append(
            f"slice {name!r}: only {n} paired example{'s' if n != 1 else ''}; "
            "the intervals are rough"
        )
    if margin is not None:
        note = margin_warning(stats, kind, margin, 1.0 - confidence)
        if note is not None:
            warnings.append(note)
    return replace(stats, warnings=tuple(warnings))


def compare_scores(
    a: Mapping[K, float | None],
    b: Mapping[K, float | None],
    slices: Mapping[K, str | None] | None,
    kind: ScoreKind,
    *,
    scorer: str = "exact",
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    margin: float | None = None,
) -> Comparison:
    """Pair a's and b's scores by example key and compare them per slice and overall.

    Only keys scored (not None) on both sides are pairs; the rest are counted in `unpaired`
    and named in the overall warnings. A pair whose key has no slice (missing or None in
    `slices`) counts in overall only. `p` is the exact McNemar p-value for pass/fail and a
    paired sign-flip permutation p-value for continuous scores; `p_holm` adjusts the slices'
    p-values together (Holm) and is None for overall, which is a single planned comparison.
    With `margin`, slices too small to resolve it carry a warning (see `margin_warning`).
    Raises InputError when no example is scored on both sides, or a score is unusable.
    """
    if kind not in SCORE_KINDS:
        raise InputError(f"unknown score kind {kind!r}; known: {', '.join(SCORE_KINDS)}")
    _check_confidence(confidence)
    _check_resamples(resamples)
    slice_of = slices or {}
    paired: list[tuple[str | None, float, float]] = []
    only_a = only_b = neither = 0
    for key in dict.fromkeys([*a.keys(), *b.keys()]):
        raw_a, raw_b = a.get(key), b.get(key)
        if raw_a is None and raw_b is None:
            neither += 1
            continue
        if raw_b is None:
            only_a += 1
            continue
        if raw_a is None:
            only_b += 1
            continue
        score_a = _check_score(raw_a, kind, key, "A", scorer)
        score_b = _check_score(raw_b, kind, key, "B", scorer)
        name = slice_of.get(key)
        if name == OVERALL:
            raise InputError(f"{OVERALL!r} is reserved for all examples; rename that slice")
        if name is not None and not isinstance(name, str):
            raise InputError(f"the slice of {key!r} must be a name, not {name!r}")
        paired.append((name, score_a, score_b))
    if not paired:
        raise InputError(
            f"scorer {scorer}: no example is scored in both evals "
            f"({only_a} only in A, {only_b} only in B, {neither} in neither)"
        )

    def stats_for(name: str, rows: list[tuple[str | None, float, float]]) -> SliceStats:
        first = np.array([row[1] for row in rows], dtype=np.float64)
        second = np.array([row[2] for row in rows], dtype=np.float64)
        return _slice_stats(name, first, second, kind, confidence, resamples, seed, margin)

    grouped: dict[str, list[tuple[str | None, float, float]]] = {}
    for row in paired:
        if row[0] is not None:
            grouped.setdefault(row[0], []).append(row)
    per_slice = [stats_for(name, grouped[name]) for name in sorted(grouped)]
    tested = [index for index, stats in enumerate(per_slice) if stats.p is not None]
    adjusted = holm_adjust([per_slice[index].p or 0.0 for index in tested])
    for index, p_holm in zip(tested, adjusted, strict=True):
        per_slice[index] = replace(per_slice[index], p_holm=p_holm)

    overall = stats_for(OVERALL, paired)
    notes = list(overall.warnings)
    if only_a or only_b:
        notes.append(
            f"{only_a} example{'s' if only_a != 1 else ''} scored only in A and {only_b} only "
            "in B are left out of every figure"
        )
    unsliced = sum(1 for row in paired if row[0] is None)
    if slices is not None and unsliced:
        notes.append(f"{unsliced} paired example(s) have no slice and count in overall only")
    overall = replace(overall, warnings=tuple(notes))
    return Comparison(
        scorer=scorer,
        kind=kind,
        slices=tuple(per_slice),
        overall=overall,
        unpaired={"only_a": only_a, "only_b": only_b, "neither": neither},
        confidence=confidence,
    )


# -- agreement between raters ------------------------------------------------------------------


def cohens_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen's κ of two raters' labels on the same items: (p_o − p_e) / (1 − p_e).

    None when there are no items or when chance agreement is certain (p_e = 1: both raters
    gave one and the same label to everything), where κ is undefined.
    """
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(1 for first, second in pairs if first == second) / n
    first_counts = Counter(first for first, _ in pairs)
    second_counts = Counter(second for _, second in pairs)
    expected = sum(
        (first_counts[label] / n) * (second_counts[label] / n)
        for label in first_counts.keys() | second_counts.keys()
    )
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)
