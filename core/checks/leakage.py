"""leakage: rows that also occur, exactly or nearly, in another set (--against, splits)."""

from __future__ import annotations

from collections import defaultdict

from core.checks import minhash
from core.checks.base import AgainstCheck, ParsedRows
from core.findings import Finding, OtherRef

# An exact-input leak needs an input this long, so "hi" in both files is not a leak.
LEAKAGE_MIN_INPUT_CHARS = 16


def leakage_findings(
    parsed: ParsedRows, other: ParsedRows, other_label: str, threshold: float
) -> list[Finding]:
    """Rows of `parsed` that occur exactly or nearly in `other` (one finding per leaking row)."""
    matches: dict[int, set[int]] = defaultdict(set)
    other_exact: dict[bytes, list[int]] = defaultdict(list)
    for index, key in enumerate(other.exact_keys):
        other_exact[key].append(index)
    other_inputs: dict[bytes, list[int]] = defaultdict(list)
    for index, input_key in enumerate(other.input_keys):
        if input_key and other.user_lengths[index] >= LEAKAGE_MIN_INPUT_CHARS:
            other_inputs[input_key].append(index)
    for index, key in enumerate(parsed.exact_keys):
        matches[index].update(other_exact.get(key, ()))
        input_key = parsed.input_keys[index]
        if input_key and parsed.user_lengths[index] >= LEAKAGE_MIN_INPUT_CHARS:
            matches[index].update(other_inputs.get(input_key, ()))
    for query, corpus_index, _ in minhash.cross_pairs(parsed.dialogs, other.dialogs, threshold):
        matches[query].add(corpus_index)
    findings = []
    for index in sorted(i for i, found in matches.items() if found):
        other_lines = tuple(sorted(other.lines[o] for o in matches[index]))
        shown = ", ".join(map(str, other_lines[:5])) + ("…" if len(other_lines) > 5 else "")
        findings.append(
            Finding(
                "leakage",
                "error",
                (parsed.lines[index],),
                f"this row also occurs (exactly or nearly) in {other_label} at line {shown}",
                other=OtherRef(other_label, other_lines),
            )
        )
    return findings


CHECK = AgainstCheck(
    "leakage",
    ("error",),
    "with `--against OTHER` (and automatically across splits): rows that occur exactly or "
    "nearly in the other set",
    leakage_findings,
)
