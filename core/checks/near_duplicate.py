"""near_duplicate: rows whose dialogs are nearly the same text (MinHash/LSH, exact Jaccard)."""

from __future__ import annotations

from core.checks import minhash
from core.checks.base import DatasetCheck, DatasetContext
from core.checks.boilerplate import stripped
from core.findings import Finding


def find(dataset: DatasetContext) -> list[Finding]:
    parsed, exact_group_of = dataset.parsed, dataset.exact_group_of
    near_pairs = minhash.near_duplicate_pairs(
        stripped(parsed.dialogs),
        dataset.threshold,
        progress=dataset.stage_progress("near-duplicates"),
    )
    # A contradiction whose dialogs are also near-identical (long question, short
    # opposite answers) is both, and is reported under both checks.
    kept = [(i, j) for i, j, _ in near_pairs if exact_group_of[i] != exact_group_of[j]]
    groups = minhash.group_pairs(dataset.count, kept)
    group_of: dict[int, int] = {m: g for g, members in enumerate(groups) for m in members}
    lowest_similarity: dict[int, float] = {}
    for i, j, similarity in near_pairs:
        group_index = group_of.get(i)
        if group_index is not None and group_of.get(j) == group_index:
            lowest_similarity[group_index] = min(
                similarity, lowest_similarity.get(group_index, 1.0)
            )
    findings: list[Finding] = []
    for group_index, members in enumerate(groups):
        # A group made only of exact copies is reported once, as exact_duplicate.
        if len({exact_group_of[m] for m in members}) < 2:
            continue
        lowest = lowest_similarity.get(group_index)
        shown = f" (similarity {lowest:.2f}+)" if lowest is not None else ""
        findings.append(
            Finding(
                "near_duplicate",
                "warning",
                tuple(parsed.lines[m] for m in members),
                f"{len(members)} rows are near-identical{shown}; keep one",
            )
        )
    return findings


CHECK = DatasetCheck(
    "near_duplicate",
    ("warning",),
    "MinHash/LSH over character 5-grams of the non-system turns, verified by exact Jaccard "
    "(`--near-dup-threshold`, default 0.7)",
    find,
)
