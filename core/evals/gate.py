"""The release gate: a YAML spec of rules, applied to baseline-vs-candidate comparisons.

    scorer: exact          # default scorer for rules that name none
    margin: 0.02           # default margin for rules that name none
    rules:
      - {slice: billing, kind: target, margin: 0.05}
      - {slice: general, kind: regression}
      - {slice: format, kind: format, margin: 0.01}
      - {slice: safety, kind: safety}
      - {slice: "*", kind: floor, scorer: json_valid, min: 0.99}
      - {slice: overall, kind: non_inferior}

Rule semantics (δ = mean_b − mean_a on paired examples, [lo, hi] its paired bootstrap CI at
the comparison's confidence, 95% by default):

* target: passes when δ ≥ margin AND lo > 0. Both, because a point estimate above the margin
  on a noisy slice is not yet an improvement, and a significant but tiny gain is not the one
  the fine-tune was for.
* regression, format, safety, non_inferior: non-inferiority, passes when lo ≥ −margin. The
  four kinds test the same thing; the kind says why the slice is guarded, for the report.
* floor: an absolute bound on the candidate alone, passes when min ≤ mean_b ≤ max (either
  bound may be left out). It is judged on the point estimate: a CI bound of 0.99 would need
  thousands of examples per slice; the candidate's interval is shown as evidence, with a
  warning when it straddles the bound.
* `better: lower` (target and non-inferiority kinds) flips the direction for scores where less
  is better (e.g. refusal rate on benign prompts): the rule then reads −δ and [−hi, −lo].

`slice: "*"` applies the rule to every named slice of the comparison (one result each);
`slice: overall` uses all paired examples. A slice with no paired examples, or a scorer with no
comparison, FAILS its rule with that as the evidence rather than stopping the gate: a gate that
silently passes a slice it never saw is worse than useless, and the report should still show
every other rule. Rules whose slice has too few pairs to resolve the margin carry a warning
(see `core.evals.stats.margin_warning`) but still pass or fail on their numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.evals.scorers import DEFAULT_SCORER, check_scorer_reference
from core.evals.stats import OVERALL, Comparison, SliceStats, margin_warning
from core.yamlfile import load_yaml_file
from store.errors import InputError

DEFAULT_MARGIN = 0.02
# Bounds are compared with this slack so that a value equal to the bound in exact arithmetic
# (a floor of 0.99 met by 0.99 computed as 1 - 0.01) is not failed by rounding. Strict tests
# (CI lower bound > 0) get none: there "just above zero" must stay above zero.
BOUND_TOLERANCE = 1e-12
ALL_SLICES = "*"
TARGET = "target"
FLOOR = "floor"
NON_INFERIORITY_KINDS = ("regression", "format", "safety", "non_inferior")
RULE_KINDS = (TARGET, *NON_INFERIORITY_KINDS, FLOOR)

_SPEC_KEYS = ("scorer", "margin", "rules", "name", "description")
_RULE_KEYS = ("slice", "kind", "scorer", "margin", "min", "max", "better")

Direction = Literal["higher", "lower"]


@dataclass(frozen=True, slots=True)
class GateRule:
    """One rule with the spec's defaults resolved (scorer always set, margin unless a floor)."""

    slice: str
    kind: str
    scorer: str
    margin: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    better: Direction = "higher"

    def as_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"slice": self.slice, "kind": self.kind, "scorer": self.scorer}
        if self.kind == FLOOR:
            if self.minimum is not None:
                payload["min"] = self.minimum
            if self.maximum is not None:
                payload["max"] = self.maximum
        else:
            payload["margin"] = self.margin
            payload["better"] = self.better
        return payload


@dataclass(frozen=True, slots=True)
class GateSpec:
    rules: tuple[GateRule, ...]
    scorer: str = DEFAULT_SCORER
    margin: float = DEFAULT_MARGIN
    name: str | None = None
    description: str | None = None

    def as_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "scorer": self.scorer,
            "margin": self.margin,
            "rules": [rule.as_json() for rule in self.rules],
        }
        if self.name is not None:
            payload["name"] = self.name
        if self.description is not None:
            payload["description"] = self.description
        return payload

    @property
    def spec_hash(self) -> str:
        return spec_hash(self)

    @property
    def scorers(self) -> tuple[str, ...]:
        """The scorers the rules need comparisons for, in first-use order."""
        return tuple(dict.fromkeys(rule.scorer for rule in self.rules))


def spec_hash(spec: GateSpec) -> str:
    """sha256 of the spec's canonical JSON (defaults resolved, keys sorted).

    Taken after resolving defaults so that comments, key order, YAML style and spelling out a
    default do not change it, while any change that can change a verdict does.
    """
    canonical = json.dumps(spec.as_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- loading -----------------------------------------------------------------------------------


def _fail(where: str, problem: str) -> InputError:
    return InputError(f"{where}: {problem}", title="Bad gate spec")


def _number(value: Any, where: str, key: str, *, non_negative: bool) -> float:
    # YAML reads `yes` as true and `1e-2` (no dot) as text: both are refused by name.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(where, f"{key} must be a number, not {value!r}")
    if non_negative and value < 0:
        raise _fail(where, f"{key} must be ≥ 0, not {value!r}")
    return float(value)


def _name(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f'{key} must be a name (quote numbers, e.g. "2024"), not {value!r}')
    return value


def _parse_rule(raw: Any, index: int, scorer: str, margin: float) -> GateRule:
    where = f"rule {index}"
    if not isinstance(raw, Mapping):
        raise _fail(where, "must be a mapping such as {slice: billing, kind: target}")
    if "slice" in raw and isinstance(raw["slice"], str):
        where = f"rule {index} (slice {raw['slice']})"
    unknown = sorted(str(key) for key in raw if key not in _RULE_KEYS)
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(unknown)}; known: {', '.join(_RULE_KEYS)}")
    for key in ("slice", "kind"):
        if key not in raw:
            raise _fail(where, f"{key} is required")
    slice_name = _name(raw["slice"], where, "slice")
    kind = raw["kind"]
    if kind not in RULE_KINDS:
        raise _fail(where, f"unknown kind {kind!r}; known: {', '.join(RULE_KINDS)}")
    rule_scorer = _name(raw.get("scorer", scorer), where, "scorer")
    try:
        # Here, at load, so that a spec naming code that is not a registered scorer
        # (`custom:shutil:rmtree`) is refused before any scorer of any rule has run.
        check_scorer_reference(rule_scorer)
    except InputError as error:
        raise _fail(where, f"scorer {rule_scorer!r}: {error.message}") from error
    if kind == FLOOR:
        for key in ("margin", "better"):
            if key in raw:
                raise _fail(where, f"{key} has no meaning for a floor rule (use min / max)")
        low = _number(raw["min"], where, "min", non_negative=False) if "min" in raw else None
        high = _number(raw["max"], where, "max", non_negative=False) if "max" in raw else None
        if low is None and high is None:
            raise _fail(where, "a floor rule needs min, max or both")
        if low is not None and high is not None and low > high:
            raise _fail(where, f"min {low:g} is above max {high:g}")
        return GateRule(slice_name, kind, rule_scorer, minimum=low, maximum=high)
    for key in ("min", "max"):
        if key in raw:
            raise _fail(where, f"{key} belongs to floor rules; a {kind} rule takes a margin")
    rule_margin = _number(raw.get("margin", margin), where, "margin", non_negative=True)
    better = raw.get("better", "higher")
    if better not in ("higher", "lower"):
        raise _fail(where, f"better must be higher or lower, not {better!r}")
    return GateRule(slice_name, kind, rule_scorer, margin=rule_margin, better=better)


def parse_gate_spec(raw: Any, where: str = "gate spec") -> GateSpec:
    """Validate a loaded YAML/JSON gate spec; every mistake raises InputError naming it."""
    if not isinstance(raw, Mapping):
        raise _fail(where, "must be a mapping with a rules list")
    unknown = sorted(str(key) for key in raw if key not in _SPEC_KEYS)
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(unknown)}; known: {', '.join(_SPEC_KEYS)}")
    scorer = _name(raw.get("scorer", DEFAULT_SCORER), where, "scorer")
    margin = _number(raw.get("margin", DEFAULT_MARGIN), where, "margin", non_negative=True)
    rules = raw.get("rules")
    if not isinstance(rules, list) or not rules:
        # An empty gate would pass every candidate; that is never what a spec meant.
        raise _fail(where, "rules must be a non-empty list")
    texts = {}
    for key in ("name", "description"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise _fail(where, f"{key} must be text")
        texts[key] = raw.get(key)
    return GateSpec(
        rules=tuple(
            _parse_rule(rule, index, scorer, margin) for index, rule in enumerate(rules, start=1)
        ),
        scorer=scorer,
        margin=margin,
        name=texts["name"],
        description=texts["description"],
    )


def load_gate_spec(path: Path | str) -> GateSpec:
    path = Path(path)
    raw = load_yaml_file(path, what="gate spec", title="Bad gate spec")
    return parse_gate_spec(raw, str(path))


# -- evaluating --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: GateRule
    slice: str
    """The slice judged: the rule's own, or one of the slices a "*" rule expanded to."""
    passed: bool
    evidence: str
    values: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule.as_json(),
            "slice": self.slice,
            "passed": self.passed,
            "evidence": self.evidence,
            "values": dict(self.values),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, slots=True)
class GateVerdict:
    passed: bool
    rules: tuple[RuleResult, ...]
    spec_hash: str

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def as_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "passed": self.passed,
            "spec_hash": self.spec_hash,
            "rules": [result.as_json() for result in self.rules],
        }

    def as_text(self) -> str:
        """PASS/FAIL on the first line, then one line per rule and its warnings."""
        lines = [self.verdict]
        for result in self.rules:
            mark = "pass" if result.passed else "FAIL"
            lines.append(f"  [{mark}] {result.rule.kind}: {result.evidence}")
            lines.extend(f"         warning: {warning}" for warning in result.warnings)
        return "\n".join(lines)


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def _clean(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _base_values(rule: GateRule, stats: SliceStats) -> dict[str, Any]:
    return {
        "scorer": rule.scorer,
        "slice": stats.slice,
        "n": stats.n,
        "mean_a": _clean(stats.mean_a),
        "mean_b": _clean(stats.mean_b),
        "delta": _clean(stats.delta),
        "ci": [_clean(stats.ci[0]), _clean(stats.ci[1])],
    }


def _judge(rule: GateRule, stats: SliceStats, comparison: Comparison) -> RuleResult:
    level = f"{comparison.confidence:.0%} CI"
    head = f"{stats.slice} ({rule.scorer}, n={stats.n})"
    values = _base_values(rule, stats)
    warnings: list[str] = []
    if rule.kind == FLOOR:
        low, high = rule.minimum, rule.maximum
        passed = (low is None or stats.mean_b >= low - BOUND_TOLERANCE) and (
            high is None or stats.mean_b <= high + BOUND_TOLERANCE
        )
        need = " and ".join(
            part
            for part in (
                f"≥ {low:.4f}" if low is not None else "",
                f"≤ {high:.4f}" if high is not None else "",
            )
            if part
        )
        ci_b = stats.ci_b
        values.update({"min": low, "max": high, "ci_b": [_clean(ci_b[0]), _clean(ci_b[1])]})
        if (low is not None and ci_b[0] < low <= ci_b[1]) or (
            high is not None and ci_b[0] <= high < ci_b[1]
        ):
            warnings.append(
                f"slice {stats.slice!r}: the candidate's {level} [{ci_b[0]:.4f}, {ci_b[1]:.4f}] "
                "straddles the floor, so more examples could change this result"
            )
        evidence = (
            f"{head}: candidate mean {stats.mean_b:.4f} ({level} [{ci_b[0]:.4f}, {ci_b[1]:.4f}]); "
            f"floor needs mean {need}: {'passed' if passed else 'failed'}"
        )
        return RuleResult(rule, stats.slice, passed, evidence, values, tuple(warnings))

    margin = rule.margin if rule.margin is not None else DEFAULT_MARGIN
    lower_better = rule.better == "lower"
    # Read every rule as "higher is better" on the gain, so one test serves both directions.
    gain = -stats.delta if lower_better else stats.delta
    gain_lo = -stats.ci[1] if lower_better else stats.ci[0]
    values.update({"margin": margin, "better": rule.better, "gain": _clean(gain)})
    values["gain_ci_lo"] = _clean(gain_lo)
    ci_lo_text, ci_hi_text = _signed(stats.ci[0]), _signed(stats.ci[1])
    numbers = f"delta {_signed(stats.delta)} ({level} [{ci_lo_text}, {ci_hi_text}])"
    direction = " (lower is better)" if lower_better else ""
    if rule.kind == TARGET:
        passed = gain >= margin - BOUND_TOLERANCE and gain_lo > 0
        if lower_better:
            need = f"delta ≤ {_signed(-margin)} and CI upper bound < 0"
        else:
            need = f"delta ≥ {_signed(margin)} and CI lower bound > 0"
    else:
        passed = gain_lo >= -margin - BOUND_TOLERANCE
        need = (
            f"CI upper bound ≤ {_signed(margin)}"
            if lower_better
            else f"CI lower bound ≥ {_signed(-margin)}"
        )
    note = margin_warning(stats, comparison.kind, margin, 1.0 - comparison.confidence)
    if note is not None:
        warnings.append(note)
    evidence = f"{head}: {numbers}; {rule.kind}{direction} needs {need}: "
    evidence += "passed" if passed else "failed"
    return RuleResult(rule, stats.slice, passed, evidence, values, tuple(warnings))


def _missing(rule: GateRule, slice_name: str, evidence: str) -> RuleResult:
    values = {"scorer": rule.scorer, "slice": slice_name}
    return RuleResult(rule, slice_name, False, evidence, values)


def evaluate_gate(spec: GateSpec, comparisons: Mapping[str, Comparison]) -> GateVerdict:
    """Apply every rule to the comparison of its scorer; PASS only when every result passes."""
    results: list[RuleResult] = []
    for rule in spec.rules:
        comparison = comparisons.get(rule.scorer)
        if comparison is None:
            available = ", ".join(sorted(comparisons)) or "none"
            results.append(
                _missing(
                    rule,
                    rule.slice,
                    f"no comparison for scorer {rule.scorer!r} (scored: {available})",
                )
            )
            continue
        if rule.slice == ALL_SLICES:
            if not comparison.slices:
                evidence = f"scorer {rule.scorer!r}: the examples have no slices"
                results.append(_missing(rule, ALL_SLICES, evidence))
            for stats in comparison.slices:
                results.append(_judge(rule, stats, comparison))
            continue
        found = comparison.get(rule.slice)
        if found is None:
            results.append(
                _missing(
                    rule,
                    rule.slice,
                    f"slice {rule.slice} has no paired examples (scorer {rule.scorer})",
                )
            )
            continue
        results.append(_judge(rule, found, comparison))
    return GateVerdict(
        passed=all(result.passed for result in results),
        rules=tuple(results),
        spec_hash=spec_hash(spec),
    )


__all__ = [
    "ALL_SLICES",
    "DEFAULT_MARGIN",
    "OVERALL",
    "RULE_KINDS",
    "GateRule",
    "GateSpec",
    "GateVerdict",
    "RuleResult",
    "evaluate_gate",
    "load_gate_spec",
    "parse_gate_spec",
    "spec_hash",
]
