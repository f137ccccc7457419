"""Typed reads and writes of human review verdicts (table `reviews`).

A verdict belongs to one baseline/candidate pair of evals, one example line and one reviewer;
judging the same example again replaces that reviewer's earlier verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from store.db import Store
from store.errors import InputError

Verdict = Literal["baseline", "candidate", "tie", "both_wrong"]
VERDICTS: tuple[Verdict, ...] = ("baseline", "candidate", "tie", "both_wrong")


@dataclass(frozen=True, slots=True)
class ReviewRecord:
    baseline_eval_id: int
    candidate_eval_id: int
    line: int
    reviewer: str
    verdict: Verdict
    note: str
    corrected: str | None
    created_at: datetime


_COLUMNS = """baseline_eval_id, candidate_eval_id, line, reviewer, verdict, note, corrected,
    created_at"""


def _record(row: Sequence[Any]) -> ReviewRecord:
    verdict = str(row[4])
    if verdict not in VERDICTS:
        raise InputError(f"stored review has an unknown verdict {verdict!r}")
    return ReviewRecord(
        baseline_eval_id=int(row[0]),
        candidate_eval_id=int(row[1]),
        line=int(row[2]),
        reviewer=str(row[3]),
        verdict=verdict,
        note=str(row[5] or ""),
        corrected=None if row[6] is None else str(row[6]),
        created_at=row[7],
    )


class ReviewRepository:
    """Every query the review room needs; each method opens and closes its own connection."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def save_verdict(
        self,
        baseline_eval_id: int,
        candidate_eval_id: int,
        line: int,
        reviewer: str,
        verdict: str,
        note: str = "",
        corrected: str | None = None,
        created_at: datetime | None = None,
    ) -> ReviewRecord:
        """Store (or replace) `reviewer`'s verdict on one example of the pair."""
        if verdict not in VERDICTS:
            raise InputError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
        name = reviewer.strip()
        if not name:
            raise InputError("a verdict needs a reviewer name")
        when = created_at or datetime.now()
        key = [baseline_eval_id, candidate_eval_id, line, name]
        with self.store.writing() as connection:
            connection.execute(
                """DELETE FROM reviews WHERE baseline_eval_id = ? AND candidate_eval_id = ?
                   AND line = ? AND reviewer = ?""",
                key,
            )
            connection.execute(
                f"INSERT INTO reviews ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [*key, verdict, note, corrected, when],
            )
        return ReviewRecord(
            baseline_eval_id=baseline_eval_id,
            candidate_eval_id=candidate_eval_id,
            line=line,
            reviewer=name,
            verdict=verdict,
            note=note,
            corrected=corrected,
            created_at=when,
        )

    def verdicts(
        self, baseline_eval_id: int, candidate_eval_id: int, reviewer: str | None = None
    ) -> list[ReviewRecord]:
        """The pair's verdicts (one reviewer's, or everyone's), by line then reviewer."""
        query = f"""SELECT {_COLUMNS} FROM reviews
                    WHERE baseline_eval_id = ? AND candidate_eval_id = ?"""
        params: list[Any] = [baseline_eval_id, candidate_eval_id]
        if reviewer is not None:
            query += " AND reviewer = ?"
            params.append(reviewer)
        with self.store.reading() as connection:
            rows = connection.execute(query + " ORDER BY line, reviewer", params).fetchall()
        return [_record(row) for row in rows]

    def reviewed_lines(
        self, baseline_eval_id: int, candidate_eval_id: int, reviewer: str
    ) -> set[int]:
        with self.store.reading() as connection:
            rows = connection.execute(
                """SELECT line FROM reviews WHERE baseline_eval_id = ?
                   AND candidate_eval_id = ? AND reviewer = ?""",
                [baseline_eval_id, candidate_eval_id, reviewer],
            ).fetchall()
        return {int(row[0]) for row in rows}

    def reviewers(self, baseline_eval_id: int, candidate_eval_id: int) -> list[str]:
        with self.store.reading() as connection:
            rows = connection.execute(
                """SELECT DISTINCT reviewer FROM reviews WHERE baseline_eval_id = ?
                   AND candidate_eval_id = ? ORDER BY reviewer""",
                [baseline_eval_id, candidate_eval_id],
            ).fetchall()
        return [str(row[0]) for row in rows]
