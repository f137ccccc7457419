"""Leak-free, content-deterministic train/val/test splits.

Each unit (a group when --group-by is given, else a row's normalised content hash) gets a
uniform number u from sha256(seed, key). Without --stratify the split is a pure threshold
on u, so adding rows never moves existing rows. Exact duplicates share a content hash and
therefore always land in the same split. With --stratify, each stratum's units are ranked
by u and cut at exact per-stratum quotas (largest remainder).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.checks.leakage import leakage_findings
from core.findings import Finding
from core.scan import parsed_rows_from_texts
from store.errors import InputError

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
MISSING_STRATUM = "(none)"


@dataclass(frozen=True)
class SplitPlan:
    lines: list[int]
    assignments: list[str]
    manifest: dict[str, Any]
    findings: list[Finding]


def unit_position(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def validate_fractions(val: float, test: float) -> None:
    for name, value in (("--val", val), ("--test", test)):
        if not 0.0 <= value < 1.0:
            raise InputError(f"{name} must be a fraction in [0, 1), not {value}")
    if val + test >= 1.0:
        raise InputError(f"--val + --test must leave rows for training ({val} + {test} >= 1)")


def validate_field_names(group_by: str | None, stratify: str | None) -> None:
    """--group-by and --stratify name a metadata field, nested ones as `a.b`."""
    for option, name in (("--group-by", group_by), ("--stratify", stratify)):
        if name is None:
            continue
        if not name.strip():
            raise InputError(f"{option} needs a metadata field name, e.g. customer_id or user.id")
        # The name becomes a quoted JSON path ($."a"."b"), where a quote cannot be escaped.
        if '"' in name:
            raise InputError(f"{option} {name!r}: a metadata field name cannot contain '\"'")
        if "" in name.split("."):
            raise InputError(
                f"{option} {name!r}: empty field name around a dot; "
                "a nested field is written as parent.child"
            )


def _quota(count: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder apportionment of `count` units to val, test (train gets the rest)."""
    exact = [count * f for f in fractions]
    floors = [int(x) for x in exact]
    remaining = round(sum(exact)) - sum(floors)
    order = sorted(range(len(exact)), key=lambda i: exact[i] - floors[i], reverse=True)
    for index in order[: max(0, remaining)]:
        floors[index] += 1
    return floors


def plan_split(
    columns: dict[str, list[Any]],
    *,
    val: float,
    test: float,
    seed: int,
    group_by: str | None,
    stratify: str | None,
    near_dup_threshold: float,
) -> SplitPlan:
    validate_fractions(val, test)
    lines: list[int] = columns["line"]
    if not lines:
        raise InputError("this dataset version has no valid rows to split")
    content_hashes: list[str] = columns["content_hash"]
    field_index = 0
    group_values: list[str | None] = [None] * len(lines)
    if group_by is not None:
        group_values = columns[f"field_{field_index}"]
        field_index += 1
        if all(value is None for value in group_values):
            raise InputError(f"--group-by {group_by}: no row has metadata.{group_by}")
    strata_values: list[str | None] = [None] * len(lines)
    if stratify is not None:
        strata_values = columns[f"field_{field_index}"]
        if all(value is None for value in strata_values):
            raise InputError(f"--stratify {stratify}: no row has metadata.{stratify}")

    # Units: rows of one group travel together; rows without the group field are their own unit.
    unit_of_row: list[str] = []
    missing_group = 0
    for value, content_hash in zip(group_values, content_hashes, strict=True):
        if group_by is not None and value is not None:
            unit_of_row.append(f"group:{value}")
        else:
            missing_group += group_by is not None
            unit_of_row.append(f"row:{content_hash}")
    unit_strata: dict[str, Counter[str]] = defaultdict(Counter)
    for unit, stratum in zip(unit_of_row, strata_values, strict=True):
        unit_strata[unit][stratum if stratum is not None else MISSING_STRATUM] += 1
    positions = {unit: unit_position(seed, unit) for unit in unit_strata}

    split_of_unit: dict[str, str] = {}
    if stratify is None:
        for unit, u in positions.items():
            split_of_unit[unit] = "val" if u < val else "test" if u < val + test else "train"
    else:
        units_by_stratum: dict[str, list[str]] = defaultdict(list)
        for unit, counts in unit_strata.items():
            # A group's stratum is its most common value (ties: alphabetical) for determinism.
            top = max(counts.items(), key=lambda item: (item[1], [-ord(c) for c in item[0]]))[0]
            units_by_stratum[top].append(unit)
        for units in units_by_stratum.values():
            units.sort(key=lambda unit: (positions[unit], unit))
            n_val, n_test = _quota(len(units), (val, test))
            for rank, unit in enumerate(units):
                split_of_unit[unit] = (
                    "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
                )

    assignments = [split_of_unit[unit] for unit in unit_of_row]
    manifest = _manifest(
        lines,
        assignments,
        content_hashes,
        unit_of_row,
        strata_values,
        seed=seed,
        val=val,
        test=test,
        group_by=group_by,
        stratify=stratify,
        missing_group=missing_group,
    )
    findings = _cross_split_leakage(columns, assignments, near_dup_threshold)
    manifest["leakage_findings"] = len(findings)
    return SplitPlan(lines, assignments, manifest, findings)


def _manifest(
    lines: list[int],
    assignments: list[str],
    content_hashes: list[str],
    units: list[str],
    strata: list[str | None],
    *,
    seed: int,
    val: float,
    test: float,
    group_by: str | None,
    stratify: str | None,
    missing_group: int,
) -> dict[str, Any]:
    per_split: dict[str, Any] = {}
    for name in SPLIT_NAMES:
        members = [i for i, split in enumerate(assignments) if split == name]
        digest = hashlib.sha256("\n".join(content_hashes[i] for i in members).encode()).hexdigest()
        per_split[name] = {
            "rows": len(members),
            "units": len({units[i] for i in members}),
            "sha256": digest,
            "first_lines": [lines[i] for i in members[:5]],
        }
    strata_table: dict[str, dict[str, int]] = {}
    if stratify is not None:
        for stratum, split in zip(strata, assignments, strict=True):
            key = stratum if stratum is not None else MISSING_STRATUM
            strata_table.setdefault(key, dict.fromkeys(SPLIT_NAMES, 0))[split] += 1
    return {
        "seed": seed,
        "val": val,
        "test": test,
        "group_by": group_by,
        "stratify": stratify,
        "method": "per-stratum quota on sha256(seed, unit)"
        if stratify
        else "threshold on sha256(seed, unit)",
        "splits": per_split,
        "strata": strata_table,
        "rows_missing_group": missing_group,
    }


def _cross_split_leakage(
    columns: dict[str, list[Any]], assignments: list[str], threshold: float
) -> list[Finding]:
    def rows_of(split: str) -> Any:
        members = [i for i, name in enumerate(assignments) if name == split]
        return parsed_rows_from_texts(
            [columns["line"][i] for i in members],
            [columns["content_hash"][i] for i in members],
            [columns["user_text"][i] or "" for i in members],
            [columns["assistant_text"][i] or "" for i in members],
            [columns["label"][i] for i in members],
        )

    parsed = {name: rows_of(name) for name in SPLIT_NAMES}
    findings: list[Finding] = []
    for held_out, seen in (("val", "train"), ("test", "train"), ("test", "val")):
        if parsed[held_out].lines and parsed[seen].lines:
            findings.extend(
                leakage_findings(parsed[held_out], parsed[seen], f"split:{seen}", threshold)
            )
    return findings
