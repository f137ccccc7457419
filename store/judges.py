"""Typed reads and writes of LLM-judge results (tables `judge_runs`, `judge_verdicts`).

A judge run belongs to one baseline/candidate pair of evals. Its verdicts are kept apart from
the human `reviews`, so nothing downstream can mistake a judge score for a person's verdict.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pyarrow as pa

from store.db import Store
from store.errors import InputError

JudgeChoice = Literal["baseline", "candidate", "tie"]
JudgeVerdict = Literal["baseline", "candidate", "tie", "inconsistent"]
JUDGE_CHOICES: tuple[JudgeChoice, ...] = ("baseline", "candidate", "tie")
JUDGE_VERDICTS: tuple[JudgeVerdict, ...] = ("baseline", "candidate", "tie", "inconsistent")


@dataclass(frozen=True, slots=True)
class JudgedExample:
    """The judge on one example, asked twice with the two outputs in swapped positions."""

    line: int
    verdict: JudgeVerdict
    """The choice both orders agree on, else `inconsistent` (the judge followed the position)."""
    baseline_first: JudgeChoice
    """What the judge chose with the baseline shown as Response A."""
    candidate_first: JudgeChoice
    """What the judge chose with the candidate shown as Response A."""
    p_candidate: float
    p_baseline: float
    p_tie: float
    """Probabilities of the three answers, averaged over both orders (they sum to 1)."""


@dataclass(frozen=True, slots=True)
class JudgeRunRecord:
    judge_id: int
    baseline_eval_id: int
    candidate_eval_id: int
    judge_model: str
    template_sha256: str
    settings: dict[str, Any]
    examples: int
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "judge_id": self.judge_id,
            "baseline_eval_id": self.baseline_eval_id,
            "candidate_eval_id": self.candidate_eval_id,
            "judge_model": self.judge_model,
            "template_sha256": self.template_sha256,
            "settings": self.settings,
            "examples": self.examples,
            "created_at": self.created_at.isoformat(timespec="seconds"),
        }


_RUN_COLUMNS = """judge_id, baseline_eval_id, candidate_eval_id, judge_model, template_sha256,
    settings, examples, created_at"""


def _run(row: Sequence[Any]) -> JudgeRunRecord:
    return JudgeRunRecord(
        judge_id=int(row[0]),
        baseline_eval_id=int(row[1]),
        candidate_eval_id=int(row[2]),
        judge_model=str(row[3]),
        template_sha256=str(row[4]),
        settings=json.loads(row[5]) if isinstance(row[5], str) else dict(row[5] or {}),
        examples=int(row[6]),
        created_at=row[7],
    )


def _choice(value: object, what: str) -> JudgeChoice:
    for choice in JUDGE_CHOICES:
        if value == choice:
            return choice
    raise InputError(f"stored judge {what} {value!r} is not one of {', '.join(JUDGE_CHOICES)}")


def _verdict(value: object) -> JudgeVerdict:
    for verdict in JUDGE_VERDICTS:
        if value == verdict:
            return verdict
    raise InputError(f"stored judge verdict {value!r} is not one of {', '.join(JUDGE_VERDICTS)}")


class JudgeRepository:
    """Every query about judge runs; each method opens and closes its own connection."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add_run(
        self,
        *,
        baseline_eval_id: int,
        candidate_eval_id: int,
        judge_model: str,
        template_sha256: str,
        settings: dict[str, Any],
        verdicts: Sequence[JudgedExample],
        created_at: datetime | None = None,
    ) -> JudgeRunRecord:
        """Store a whole judge run in one transaction: all of its verdicts or none."""
        when = created_at or datetime.now()
        with self.store.writing() as connection:
            row = connection.execute(
                """INSERT INTO judge_runs (baseline_eval_id, candidate_eval_id, judge_model,
                       template_sha256, settings, examples, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING judge_id""",
                [
                    baseline_eval_id,
                    candidate_eval_id,
                    judge_model,
                    template_sha256,
                    json.dumps(settings),
                    len(verdicts),
                    when,
                ],
            ).fetchone()
            assert row is not None
            judge_id = int(row[0])
            if verdicts:
                table = pa.table(
                    {
                        "judge_id": pa.array([judge_id] * len(verdicts), pa.int32()),
                        "line": pa.array([v.line for v in verdicts], pa.int32()),
                        "verdict": pa.array([v.verdict for v in verdicts], pa.string()),
                        "baseline_first": pa.array(
                            [v.baseline_first for v in verdicts], pa.string()
                        ),
                        "candidate_first": pa.array(
                            [v.candidate_first for v in verdicts], pa.string()
                        ),
                        "p_candidate": pa.array([v.p_candidate for v in verdicts], pa.float64()),
                        "p_baseline": pa.array([v.p_baseline for v in verdicts], pa.float64()),
                        "p_tie": pa.array([v.p_tie for v in verdicts], pa.float64()),
                    }
                )
                # One Arrow scan instead of a statement per row (executemany is slow in DuckDB).
                connection.register("incoming_judge_verdicts", table)
                try:
                    connection.execute(
                        """INSERT INTO judge_verdicts (judge_id, line, verdict, baseline_first,
                               candidate_first, p_candidate, p_baseline, p_tie)
                           SELECT judge_id, line, verdict, baseline_first, candidate_first,
                                  p_candidate, p_baseline, p_tie
                           FROM incoming_judge_verdicts"""
                    )
                finally:
                    connection.unregister("incoming_judge_verdicts")
        return JudgeRunRecord(
            judge_id=judge_id,
            baseline_eval_id=baseline_eval_id,
            candidate_eval_id=candidate_eval_id,
            judge_model=judge_model,
            template_sha256=template_sha256,
            settings=dict(settings),
            examples=len(verdicts),
            created_at=when,
        )

    def runs(self, baseline_eval_id: int, candidate_eval_id: int) -> list[JudgeRunRecord]:
        """The pair's judge runs, oldest first."""
        with self.store.reading() as connection:
            rows = connection.execute(
                f"""SELECT {_RUN_COLUMNS} FROM judge_runs
                    WHERE baseline_eval_id = ? AND candidate_eval_id = ?
                    ORDER BY judge_id""",
                [baseline_eval_id, candidate_eval_id],
            ).fetchall()
        return [_run(row) for row in rows]

    def runs_of_candidate(self, candidate_eval_id: int) -> list[JudgeRunRecord]:
        """Every judge run with this eval as the candidate, oldest first."""
        with self.store.reading() as connection:
            rows = connection.execute(
                f"""SELECT {_RUN_COLUMNS} FROM judge_runs WHERE candidate_eval_id = ?
                    ORDER BY judge_id""",
                [candidate_eval_id],
            ).fetchall()
        return [_run(row) for row in rows]

    def latest_run(self, baseline_eval_id: int, candidate_eval_id: int) -> JudgeRunRecord | None:
        runs = self.runs(baseline_eval_id, candidate_eval_id)
        return runs[-1] if runs else None

    def verdicts(self, judge_id: int) -> list[JudgedExample]:
        with self.store.reading() as connection:
            rows = connection.execute(
                """SELECT line, verdict, baseline_first, candidate_first, p_candidate,
                          p_baseline, p_tie
                   FROM judge_verdicts WHERE judge_id = ? ORDER BY line""",
                [judge_id],
            ).fetchall()
        return [
            JudgedExample(
                line=int(row[0]),
                verdict=_verdict(row[1]),
                baseline_first=_choice(row[2], "choice"),
                candidate_first=_choice(row[3], "choice"),
                p_candidate=float(row[4]),
                p_baseline=float(row[5]),
                p_tie=float(row[6]),
            )
            for row in rows
        ]
