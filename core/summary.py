"""Dataset-level summaries: rows, turns, token lengths, roles, label/slice balance."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.checks.registry import CHECK_IDS
from core.findings import Finding

# Token-length histogram bucket edges (upper bounds), chosen around common max_seq_len values.
TOKEN_BUCKETS: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048, 4096, 8192)


class SummaryBuilder:
    def __init__(self) -> None:
        self.blank_lines = 0
        self.turns: list[int] = []
        self.total_tokens: list[int] = []
        self.assistant_tokens: list[int] = []
        self.roles: Counter[str] = Counter()
        self.labels: Counter[str] = Counter()
        self.slices: Counter[str] = Counter()
        self.missing_system = 0
        self.with_tool_calls = 0

    def merge(self, other: SummaryBuilder) -> None:
        """Fold in the summary of another part of the same file (parallel scans)."""
        self.blank_lines += other.blank_lines
        self.turns.extend(other.turns)
        self.total_tokens.extend(other.total_tokens)
        self.assistant_tokens.extend(other.assistant_tokens)
        self.roles.update(other.roles)
        self.labels.update(other.labels)
        self.slices.update(other.slices)
        self.missing_system += other.missing_system
        self.with_tool_calls += other.with_tool_calls

    def add_row(
        self,
        roles: list[str],
        total_tokens: int,
        assistant_tokens: int,
        label: str | None,
        slice_name: str | None,
        *,
        has_system: bool,
        has_tool_calls: bool,
    ) -> None:
        self.turns.append(len(roles))
        self.total_tokens.append(total_tokens)
        self.assistant_tokens.append(assistant_tokens)
        for role in roles:
            self.roles[role] += 1
        if label is not None:
            self.labels[label] += 1
        if slice_name is not None:
            self.slices[slice_name] += 1
        if not has_system:
            self.missing_system += 1
        if has_tool_calls:
            self.with_tool_calls += 1

    def build(
        self, findings: Sequence[Finding], rows: int, valid_rows: int, token_counting: str
    ) -> dict[str, Any]:
        parsed = len(self.turns)
        return {
            "rows": rows,
            "valid_rows": valid_rows,
            "parsed_rows": parsed,
            "blank_lines": self.blank_lines,
            "turns": describe(self.turns),
            "tokens": {
                "counting": token_counting,
                "total": describe(self.total_tokens),
                "assistant": describe(self.assistant_tokens),
                "histogram": histogram(self.total_tokens),
            },
            "roles": dict(self.roles.most_common()),
            "labels": dict(self.labels.most_common()),
            "slices": dict(self.slices.most_common()),
            "missing_system_share": round(self.missing_system / parsed, 4) if parsed else 0.0,
            "rows_with_tool_calls": self.with_tool_calls,
            "findings_by_check": findings_by_check(findings),
        }


def describe(values: Sequence[int]) -> dict[str, float]:
    if not values:
        return {"count": 0, "sum": 0, "min": 0, "mean": 0, "p50": 0, "p90": 0, "p99": 0, "max": 0}
    array = np.asarray(values, dtype=np.int64)
    p50, p90, p99 = np.percentile(array, [50, 90, 99])
    return {
        "count": int(array.size),
        "sum": int(array.sum()),
        "min": int(array.min()),
        "mean": round(float(array.mean()), 2),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": int(array.max()),
    }


def histogram(values: Sequence[int]) -> list[dict[str, Any]]:
    """Counts per bucket `(previous edge, edge]`, the last bucket open-ended."""
    array = np.asarray(values, dtype=np.int64)
    edges = np.asarray(TOKEN_BUCKETS, dtype=np.int64)
    positions = (
        np.searchsorted(edges, array, side="left") if array.size else np.array([], dtype=np.int64)
    )
    counts = np.bincount(positions, minlength=len(edges) + 1)
    buckets = []
    lower = 0
    for index, upper in enumerate(TOKEN_BUCKETS):
        buckets.append(
            {"label": f"≤{upper}", "low": lower + 1, "high": upper, "count": int(counts[index])}
        )
        lower = upper
    buckets.append({"label": f">{lower}", "low": lower + 1, "high": None, "count": int(counts[-1])})
    return buckets


def findings_by_check(findings: Sequence[Finding]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for check in CHECK_IDS:
        table[check] = {"error": 0, "warning": 0, "info": 0, "rows": 0}
    rows_seen: dict[str, set[int]] = {}
    for finding in findings:
        entry = table.setdefault(finding.check, {"error": 0, "warning": 0, "info": 0, "rows": 0})
        entry[finding.severity] += 1
        rows_seen.setdefault(finding.check, set()).update(finding.lines)
    for check, lines in rows_seen.items():
        table[check]["rows"] = len(lines)
    return table
