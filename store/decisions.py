"""Typed reads and writes of decision records (table `decisions`), and the few evidence
queries the decision desk needs that no other repository answers.

A record is versioned by name: deciding the same question again stores version n+1 and never
rewrites an earlier one, so the history of a decision stays as it was argued.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from store.db import Store
from store.errors import InputError, NotFoundError

DUPLICATE_CHECKS = ("exact_duplicate", "near_duplicate")


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    name: str
    version: int
    verdict: str
    symptoms: tuple[str, ...]
    answers: dict[str, Any]
    inputs: dict[str, Any]
    """What the decision was asked with (refs, split, gate spec), so --refresh can re-ask."""
    payload: dict[str, Any]
    """The decision as `ftod decide --json` printed it."""
    reviewer: str
    dataset_version_id: int | None
    baseline_eval_id: int | None
    gate_spec_hash: str | None
    candidate_eval_id: int | None
    run_id: str | None
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class DecisionToStore:
    name: str
    verdict: str
    symptoms: Sequence[str]
    answers: Mapping[str, Any]
    inputs: Mapping[str, Any]
    payload: Mapping[str, Any]
    reviewer: str
    dataset_version_id: int | None = None
    baseline_eval_id: int | None = None
    gate_spec_hash: str | None = None
    candidate_eval_id: int | None = None
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class CleanCount:
    """How many rows of a version could train, and what was taken off the valid rows."""

    valid: int
    with_errors: int
    duplicate_copies: int

    @property
    def clean(self) -> int:
        return self.valid - self.with_errors - self.duplicate_copies


_COLUMNS = """name, version, verdict, symptoms, answers, inputs, payload, reviewer,
    dataset_version_id, baseline_eval_id, gate_spec_hash, candidate_eval_id, run_id, created_at"""


def _record(row: Sequence[Any]) -> DecisionRecord:
    return DecisionRecord(
        name=str(row[0]),
        version=int(row[1]),
        verdict=str(row[2]),
        symptoms=tuple(json.loads(row[3])),
        answers=json.loads(row[4]),
        inputs=json.loads(row[5]),
        payload=json.loads(row[6]),
        reviewer=str(row[7]),
        dataset_version_id=None if row[8] is None else int(row[8]),
        baseline_eval_id=None if row[9] is None else int(row[9]),
        gate_spec_hash=None if row[10] is None else str(row[10]),
        candidate_eval_id=None if row[11] is None else int(row[11]),
        run_id=None if row[12] is None else str(row[12]),
        created_at=row[13],
    )


def _strict(value: Any) -> str:
    # allow_nan=False: a NaN stored here would make every later `show --json` invalid JSON.
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


class DecisionRepository:
    """Every query the decision desk needs; each method opens and closes its own connection."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- decision records --------------------------------------------------------------
    def add_decision(self, decision: DecisionToStore, created_at: datetime | None = None) -> int:
        """Store the next version of `decision.name`; returns its version number."""
        name = decision.name.strip()
        if not name or any(ch.isspace() for ch in name) or "@" in name:
            raise InputError(
                f"{decision.name!r} is not a decision name; use letters, digits, - and _",
                field="name",
            )
        with self.store.writing() as connection:
            row = connection.execute(
                "SELECT coalesce(max(version), 0) FROM decisions WHERE name = ?", [name]
            ).fetchone()
            version = int(row[0] if row else 0) + 1
            connection.execute(
                f"INSERT INTO decisions ({_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    name,
                    version,
                    decision.verdict,
                    _strict(list(decision.symptoms)),
                    _strict(dict(decision.answers)),
                    _strict(dict(decision.inputs)),
                    _strict(dict(decision.payload)),
                    decision.reviewer,
                    decision.dataset_version_id,
                    decision.baseline_eval_id,
                    decision.gate_spec_hash,
                    decision.candidate_eval_id,
                    decision.run_id,
                    created_at or datetime.now(),
                ],
            )
        return version

    def list_latest(self) -> list[tuple[DecisionRecord, int]]:
        """The latest version of every decision, with how many versions it has, by name."""
        with self.store.reading() as connection:
            rows = connection.execute(
                f"""SELECT {_COLUMNS}, versions FROM (
                        SELECT *, count(*) OVER (PARTITION BY name) AS versions,
                               row_number() OVER (PARTITION BY name ORDER BY version DESC) AS n
                        FROM decisions)
                    WHERE n = 1 ORDER BY name"""
            ).fetchall()
        return [(_record(row), int(row[14])) for row in rows]

    def versions(self, name: str) -> list[DecisionRecord]:
        with self.store.reading() as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM decisions WHERE name = ? ORDER BY version", [name]
            ).fetchall()
        if not rows:
            raise NotFoundError(
                f"No decision named {name!r}. `ftod decide list` shows the decisions."
            )
        return [_record(row) for row in rows]

    # -- evidence ----------------------------------------------------------------------
    def clean_count(self, version_id: int, split_id: int | None, split: str | None) -> CleanCount:
        """Valid rows (of one split when named) less those in an error finding, with each
        duplicate group counted once: the examples that could actually teach something."""
        with self.store.reading() as connection:
            if split_id is not None:
                rows = connection.execute(
                    """SELECT e.line FROM examples e JOIN split_assignments s
                           ON s.line = e.line AND s.split_id = ? AND s.split = ?
                       WHERE e.version_id = ? AND e.valid""",
                    [split_id, split, version_id],
                ).fetchall()
            else:
                rows = connection.execute(
                    "SELECT line FROM examples WHERE version_id = ? AND valid", [version_id]
                ).fetchall()
            # Split leakage findings (split_id set) are about the split, not the rows' content.
            findings = connection.execute(
                """SELECT check_id, severity, lines FROM findings
                   WHERE version_id = ? AND split_id IS NULL""",
                [version_id],
            ).fetchall()
        valid = {int(row[0]) for row in rows}
        with_errors: set[int] = set()
        for _check, severity, lines in findings:
            if severity == "error":
                with_errors.update(int(line) for line in lines if int(line) in valid)
        copies: set[int] = set()
        for check, _severity, lines in findings:
            if check in DUPLICATE_CHECKS:
                kept = sorted(int(line) for line in lines if int(line) in valid - with_errors)
                copies.update(kept[1:])
        return CleanCount(len(valid), len(with_errors), len(copies))

    def error_lines_by_check(
        self, version_id: int, split_id: int | None, split: str | None
    ) -> dict[str, list[int]]:
        """check → the lines (of one split when named) with an error finding of that check."""
        with self.store.reading() as connection:
            findings = connection.execute(
                """SELECT check_id, lines FROM findings
                   WHERE version_id = ? AND severity = 'error' AND split_id IS NULL
                   ORDER BY check_id, finding_id""",
                [version_id],
            ).fetchall()
            in_split: set[int] | None = None
            if split_id is not None:
                in_split = {
                    int(row[0])
                    for row in connection.execute(
                        "SELECT line FROM split_assignments WHERE split_id = ? AND split = ?",
                        [split_id, split],
                    ).fetchall()
                }
        by_check: dict[str, set[int]] = {}
        for check, lines in findings:
            chosen = {int(line) for line in lines if in_split is None or int(line) in in_split}
            if chosen:
                by_check.setdefault(str(check), set()).update(chosen)
        return {check: sorted(lines) for check, lines in sorted(by_check.items())}

    def leakage_findings(self, version_id: int) -> list[dict[str, Any]]:
        """Every leakage finding of a version (against other files or between its splits)."""
        with self.store.reading() as connection:
            rows = connection.execute(
                """SELECT finding_id, split_id, lines, other_path, message FROM findings
                   WHERE version_id = ? AND check_id = 'leakage' ORDER BY finding_id""",
                [version_id],
            ).fetchall()
        return [
            {
                "finding_id": int(row[0]),
                "split_id": None if row[1] is None else int(row[1]),
                "lines": [int(line) for line in row[2]],
                "other_path": row[3],
                "message": str(row[4]),
            }
            for row in rows
        ]

    def shared_rows(
        self,
        training: tuple[int, int | None, str | None],
        evaluated: tuple[int, int | None, str | None],
    ) -> list[int]:
        """Lines of the eval set (version id, split plan id, split) whose conversation or
        user turn also appears in the training data: the leakage two separately added
        datasets can have, which no split finding records."""
        parts: list[str] = []
        params: list[Any] = []
        for version_id, split_id, split in (training, evaluated):
            if split_id is None:
                parts.append(
                    "SELECT line, content_hash, user_text FROM examples "
                    "WHERE version_id = ? AND valid"
                )
                params.append(version_id)
            else:
                parts.append(
                    "SELECT e.line, e.content_hash, e.user_text FROM examples e "
                    "JOIN split_assignments s ON s.line = e.line AND s.split_id = ? "
                    "AND s.split = ? WHERE e.version_id = ? AND e.valid"
                )
                params += [split_id, split, version_id]
        with self.store.reading() as connection:
            rows = connection.execute(
                f"""WITH t AS ({parts[0]}), v AS ({parts[1]})
                    SELECT DISTINCT v.line FROM v JOIN t
                      ON v.content_hash = t.content_hash
                      OR (v.user_text IS NOT NULL AND v.user_text = t.user_text)
                    ORDER BY v.line""",
                params,
            ).fetchall()
        return [int(row[0]) for row in rows]
