"""exact_duplicate: rows identical after whitespace normalisation (roles included)."""

from __future__ import annotations

from core.checks.base import DatasetCheck, DatasetContext
from core.findings import Finding


def find(dataset: DatasetContext) -> list[Finding]:
    lines = dataset.parsed.lines
    return [
        Finding(
            "exact_duplicate",
            "warning",
            tuple(lines[m] for m in members),
            f"{len(members)} identical rows (after whitespace normalisation); "
            f"keep one (first at line {lines[members[0]]})",
        )
        for members in dataset.copy_groups
    ]


CHECK = DatasetCheck(
    "exact_duplicate", ("warning",), "identical after whitespace normalisation", find
)
