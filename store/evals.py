"""Typed reads and writes of evals (tables `evals`, `eval_outputs`, `eval_scores`,
`gate_results`) and of the dataset rows an eval set is made of.

An eval's outputs are keyed by the example's line in the dataset version's source file, the
one key that is stable across splits, exports and re-imports of the same version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from store.datasets import parsed_rows_query
from store.db import Store
from store.errors import InputError, NotFoundError


@dataclass(frozen=True, slots=True)
class EvalRecord:
    eval_id: int
    label: str
    version_id: int
    dataset: str
    version: int
    split: str | None
    split_id: int | None
    source: str
    model: str | None
    adapter: str | None
    prompt: str | None
    scorers: tuple[dict[str, Any], ...]
    """Each scorer's `Scorer.spec()`, in the order they were named."""
    outputs_path: str | None
    outputs_sha256: str | None
    rows: int
    notes: tuple[str, ...]
    created_at: datetime

    @property
    def data_ref(self) -> str:
        """NAME@V, or NAME@V:split for an eval on one split."""
        ref = f"{self.dataset}@{self.version}"
        return f"{ref}:{self.split}" if self.split else ref

    @property
    def scorer_names(self) -> tuple[str, ...]:
        return tuple(str(spec.get("as") or spec.get("name")) for spec in self.scorers)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.eval_id,
            "label": self.label,
            "data": self.data_ref,
            "dataset": self.dataset,
            "version": self.version,
            "split": self.split,
            "split_id": self.split_id,
            "source": self.source,
            "model": self.model,
            "adapter": self.adapter,
            "prompt": self.prompt,
            "scorers": [dict(spec) for spec in self.scorers],
            "outputs_path": self.outputs_path,
            "outputs_sha256": self.outputs_sha256,
            "rows": self.rows,
            "notes": list(self.notes),
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class EvalOutput:
    """One model output for the example at `line`, with what the generator reported."""

    line: int
    output: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float | None = None
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ScoreToStore:
    line: int
    scorer: str
    score: float | None


@dataclass(frozen=True, slots=True)
class EvalExampleRow:
    """A dataset row as an eval set sees it; `slice` is the stored `metadata.slice`."""

    line: int
    messages: list[dict[str, Any]]
    metadata: dict[str, Any]
    slice: str | None


@dataclass(frozen=True, slots=True)
class ScorerSummary:
    scorer: str
    scored: int
    skipped: int
    """Outputs the scorer did not apply to (score NULL), e.g. no reference."""
    mean: float | None


@dataclass(frozen=True, slots=True)
class GateResultRecord:
    gate_id: int
    baseline_eval_id: int
    baseline_label: str | None
    candidate_eval_id: int
    candidate_label: str | None
    spec_hash: str
    spec: dict[str, Any]
    passed: bool
    verdict: dict[str, Any]
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "gate_id": self.gate_id,
            "baseline": {"id": self.baseline_eval_id, "label": self.baseline_label},
            "candidate": {"id": self.candidate_eval_id, "label": self.candidate_label},
            "spec_hash": self.spec_hash,
            "spec": self.spec,
            "passed": self.passed,
            "verdict": self.verdict,
            "created_at": self.created_at.isoformat(),
        }


_EVAL_COLUMNS = """e.eval_id, e.label, e.version_id, d.name, v.version, e.split, e.split_id,
    e.source, e.model, e.adapter, e.prompt, e.scorers, e.outputs_path, e.outputs_sha256,
    e.rows, e.notes, e.created_at"""
_EVAL_FROM = """evals e JOIN dataset_versions v USING (version_id)
    JOIN datasets d USING (dataset_id)"""


_GATE_SELECT = """SELECT g.gate_id, g.baseline_eval_id, b.label, g.candidate_eval_id, c.label,
    g.spec_hash, g.spec, g.passed, g.verdict, g.created_at
    FROM gate_results g
    LEFT JOIN evals b ON b.eval_id = g.baseline_eval_id
    LEFT JOIN evals c ON c.eval_id = g.candidate_eval_id"""


def _eval_from_row(row: Sequence[Any]) -> EvalRecord:
    values = list(row)
    values[11] = tuple(json.loads(values[11])) if values[11] else ()
    values[15] = tuple(json.loads(values[15])) if values[15] else ()
    return EvalRecord(*values)


def _gate_from_row(row: Sequence[Any]) -> GateResultRecord:
    return GateResultRecord(
        gate_id=int(row[0]),
        baseline_eval_id=int(row[1]),
        baseline_label=row[2],
        candidate_eval_id=int(row[3]),
        candidate_label=row[4],
        spec_hash=row[5],
        spec=json.loads(row[6]),
        passed=bool(row[7]),
        verdict=json.loads(row[8]),
        created_at=row[9],
    )


class EvalRepository:
    """Every query the eval commands need; each method opens and closes its own connection."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reads -------------------------------------------------------------------------
    def list_evals(self) -> list[EvalRecord]:
        with self.store.reading() as connection:
            rows = connection.execute(
                f"SELECT {_EVAL_COLUMNS} FROM {_EVAL_FROM} ORDER BY e.eval_id"
            ).fetchall()
        return [_eval_from_row(row) for row in rows]

    def labels(self) -> list[str]:
        with self.store.reading() as connection:
            rows = connection.execute("SELECT label FROM evals ORDER BY eval_id").fetchall()
        return [str(row[0]) for row in rows]

    def eval_by_id(self, eval_id: int) -> EvalRecord:
        with self.store.reading() as connection:
            row = connection.execute(
                f"SELECT {_EVAL_COLUMNS} FROM {_EVAL_FROM} WHERE e.eval_id = ?", [eval_id]
            ).fetchone()
        if row is None:
            raise NotFoundError(f"No eval with id {eval_id}")
        return _eval_from_row(row)

    def eval_by_ref(self, ref: str) -> EvalRecord:
        """An eval named by its label or its id. A label wins: it is what a person typed
        when creating the eval, while ids are assigned and could collide with a numeric label."""
        text = ref.strip()
        with self.store.reading() as connection:
            row = connection.execute(
                f"SELECT {_EVAL_COLUMNS} FROM {_EVAL_FROM} WHERE e.label = ?", [text]
            ).fetchone()
            digits = text.removeprefix("#")
            if row is None and digits.isdigit():
                row = connection.execute(
                    f"SELECT {_EVAL_COLUMNS} FROM {_EVAL_FROM} WHERE e.eval_id = ?",
                    [int(digits)],
                ).fetchone()
            labels = [
                str(found[0])
                for found in connection.execute(
                    "SELECT label FROM evals ORDER BY eval_id"
                ).fetchall()
            ]
        if row is None:
            known = ", ".join(labels[:20]) + (" …" if len(labels) > 20 else "")
            hint = f" Known evals: {known}." if labels else " No evals yet: `ftod eval import`."
            raise NotFoundError(f"No eval labelled or numbered {ref!r}.{hint}")
        return _eval_from_row(row)

    def outputs(self, eval_id: int) -> list[EvalOutput]:
        with self.store.reading() as connection:
            rows = connection.execute(
                """SELECT line, output, input_tokens, output_tokens, latency_s, finish_reason
                   FROM eval_outputs WHERE eval_id = ? ORDER BY line""",
                [eval_id],
            ).fetchall()
        return [EvalOutput(*row) for row in rows]

    def scores(self, eval_id: int, scorer: str) -> dict[int, float | None]:
        """line → score (None where the scorer did not apply) of one stored scorer."""
        with self.store.reading() as connection:
            rows = connection.execute(
                "SELECT line, score FROM eval_scores WHERE eval_id = ? AND scorer = ? "
                "ORDER BY line",
                [eval_id, scorer],
            ).fetchall()
        return {int(line): None if score is None else float(score) for line, score in rows}

    def score_summaries(self, eval_id: int) -> list[ScorerSummary]:
        with self.store.reading() as connection:
            rows = connection.execute(
                """SELECT scorer, count(score), count(*) - count(score), avg(score)
                   FROM eval_scores WHERE eval_id = ? GROUP BY scorer ORDER BY scorer""",
                [eval_id],
            ).fetchall()
        return [
            ScorerSummary(str(name), int(scored), int(skipped), None if mean is None else mean)
            for name, scored, skipped, mean in rows
        ]

    def summaries_and_gates(
        self,
    ) -> tuple[dict[int, list[ScorerSummary]], dict[int, list[GateResultRecord]]]:
        """Every eval's scorer summaries and its gate results as candidate (oldest first), in
        one connection: a list of evals needs them all, and a connection costs ~25 ms."""
        summaries: dict[int, list[ScorerSummary]] = {}
        gates: dict[int, list[GateResultRecord]] = {}
        with self.store.reading() as connection:
            for eval_id, name, scored, skipped, mean in connection.execute(
                """SELECT eval_id, scorer, count(score), count(*) - count(score), avg(score)
                   FROM eval_scores GROUP BY eval_id, scorer ORDER BY eval_id, scorer"""
            ).fetchall():
                summaries.setdefault(int(eval_id), []).append(
                    ScorerSummary(str(name), int(scored), int(skipped), mean)
                )
            rows = connection.execute(
                f"{_GATE_SELECT} ORDER BY g.candidate_eval_id, g.gate_id"
            ).fetchall()
        for row in rows:
            record = _gate_from_row(row)
            gates.setdefault(record.candidate_eval_id, []).append(record)
        return summaries, gates

    def gate_results(self, candidate_eval_id: int) -> list[GateResultRecord]:
        with self.store.reading() as connection:
            rows = connection.execute(
                f"{_GATE_SELECT} WHERE g.candidate_eval_id = ? ORDER BY g.gate_id",
                [candidate_eval_id],
            ).fetchall()
        return [_gate_from_row(row) for row in rows]

    def eval_examples(
        self, version_id: int, split_id: int | None = None, split: str | None = None
    ) -> list[EvalExampleRow]:
        """The rows of a version that parsed into a conversation, or one split's rows.

        Not only the valid rows: a prompt-only eval set (conversations ending on a user turn)
        fails the training checks but is exactly what reference-free scorers are for. A split
        holds valid rows only, because splitting assigns nothing else.
        """
        query, params = parsed_rows_query("slice", version_id, split_id, split)
        with self.store.reading() as connection:
            table = connection.sql(query, params=params).to_arrow_table()
        columns = [table.column(index).to_pylist() for index in range(table.num_columns)]
        return [
            EvalExampleRow(
                line=int(line),
                messages=json.loads(messages) if messages else [],
                metadata=json.loads(metadata) if metadata else {},
                slice=slice_name,
            )
            for line, messages, metadata, slice_name in zip(*columns, strict=True)
        ]

    def line_places(
        self, version_id: int, split_id: int | None = None
    ) -> dict[int, tuple[bool, str | None]]:
        """line → (parsed into a conversation, split in plan `split_id`) for every row.

        Only read to explain an unknown line: "not in the dataset" and "in the train split,
        not test" call for different fixes.
        """
        with self.store.reading() as connection:
            rows = connection.execute(
                """SELECT e.line, e.messages IS NOT NULL, s.split FROM examples e
                   LEFT JOIN split_assignments s ON s.line = e.line AND s.split_id = ?
                   WHERE e.version_id = ?""",
                [split_id, version_id],
            ).fetchall()
        return {int(line): (bool(parsed), split) for line, parsed, split in rows}

    # -- writes ------------------------------------------------------------------------
    def add_eval(
        self,
        *,
        label: str,
        version_id: int,
        split: str | None,
        split_id: int | None,
        source: str,
        scorers: Sequence[dict[str, Any]],
        outputs: Sequence[EvalOutput],
        scores: Sequence[ScoreToStore],
        outputs_path: str | None = None,
        outputs_sha256: str | None = None,
        model: str | None = None,
        adapter: str | None = None,
        prompt: str | None = None,
        notes: Sequence[str] = (),
        created_at: datetime | None = None,
    ) -> EvalRecord:
        """The eval, its outputs and its scores in one transaction: all of it or none."""
        with self.store.writing() as connection:
            taken = connection.execute(
                "SELECT eval_id FROM evals WHERE label = ?", [label]
            ).fetchone()
            if taken is not None:
                raise InputError(f"an eval labelled {label!r} already exists (id {taken[0]})")
            try:
                row = connection.execute(
                    """INSERT INTO evals (label, version_id, split, split_id, source, model,
                           adapter, prompt, scorers, outputs_path, outputs_sha256, rows, notes,
                           created_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING eval_id""",
                    [
                        label,
                        version_id,
                        split,
                        split_id,
                        source,
                        model,
                        adapter,
                        prompt,
                        json.dumps(list(scorers)),
                        outputs_path,
                        outputs_sha256,
                        len(outputs),
                        json.dumps(list(notes)),
                        created_at or datetime.now(),
                    ],
                ).fetchone()
            except duckdb.ConstraintException as error:
                # Another process took the label between our check and the insert.
                raise InputError(f"an eval labelled {label!r} already exists") from error
            assert row is not None
            eval_id = int(row[0])
            _insert_outputs(connection, eval_id, outputs)
            _insert_scores(connection, eval_id, scores)
        return self.eval_by_id(eval_id)

    def add_scores(
        self, eval_id: int, spec: dict[str, Any], name: str, scores: Sequence[ScoreToStore]
    ) -> EvalRecord:
        """Store (or replace) one scorer's scores and record its spec on the eval."""
        if any(score.scorer != name for score in scores):
            raise InputError(f"add_scores: every score must belong to scorer {name!r}")
        with self.store.writing() as connection:
            row = connection.execute(
                "SELECT scorers FROM evals WHERE eval_id = ?", [eval_id]
            ).fetchone()
            if row is None:
                raise NotFoundError(f"No eval with id {eval_id}")
            specs = [
                existing
                for existing in json.loads(row[0] or "[]")
                if (existing.get("as") or existing.get("name")) != name
            ]
            specs.append(spec)
            connection.execute(
                "UPDATE evals SET scorers = ? WHERE eval_id = ?", [json.dumps(specs), eval_id]
            )
            connection.execute(
                "DELETE FROM eval_scores WHERE eval_id = ? AND scorer = ?", [eval_id, name]
            )
            _insert_scores(connection, eval_id, scores)
        return self.eval_by_id(eval_id)

    def add_gate_result(
        self,
        *,
        baseline_eval_id: int,
        candidate_eval_id: int,
        spec_hash: str,
        spec: dict[str, Any],
        passed: bool,
        verdict: dict[str, Any],
        created_at: datetime | None = None,
    ) -> int:
        with self.store.writing() as connection:
            row = connection.execute(
                """INSERT INTO gate_results (baseline_eval_id, candidate_eval_id, spec_hash,
                       spec, passed, verdict, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING gate_id""",
                [
                    baseline_eval_id,
                    candidate_eval_id,
                    spec_hash,
                    json.dumps(spec),
                    passed,
                    json.dumps(verdict),
                    created_at or datetime.now(),
                ],
            ).fetchone()
        assert row is not None
        return int(row[0])


def _insert_outputs(
    connection: duckdb.DuckDBPyConnection, eval_id: int, outputs: Sequence[EvalOutput]
) -> None:
    if not outputs:
        return
    table = pa.table(
        {
            "eval_id": pa.array([eval_id] * len(outputs), pa.int32()),
            "line": pa.array([o.line for o in outputs], pa.int32()),
            "output": pa.array([o.output for o in outputs], pa.string()),
            "input_tokens": pa.array([o.input_tokens for o in outputs], pa.int32()),
            "output_tokens": pa.array([o.output_tokens for o in outputs], pa.int32()),
            "latency_s": pa.array([o.latency_s for o in outputs], pa.float64()),
            "finish_reason": pa.array([o.finish_reason for o in outputs], pa.string()),
        }
    )
    # One Arrow scan instead of a statement per row (executemany is slow in DuckDB).
    connection.register("incoming_outputs", table)
    try:
        connection.execute(
            """INSERT INTO eval_outputs (eval_id, line, output, input_tokens, output_tokens,
                   latency_s, finish_reason)
               SELECT eval_id, line, output, input_tokens, output_tokens, latency_s,
                      finish_reason FROM incoming_outputs"""
        )
    finally:
        connection.unregister("incoming_outputs")


def _insert_scores(
    connection: duckdb.DuckDBPyConnection, eval_id: int, scores: Sequence[ScoreToStore]
) -> None:
    if not scores:
        return
    table = pa.table(
        {
            "eval_id": pa.array([eval_id] * len(scores), pa.int32()),
            "line": pa.array([s.line for s in scores], pa.int32()),
            "scorer": pa.array([s.scorer for s in scores], pa.string()),
            "score": pa.array([s.score for s in scores], pa.float64()),
        }
    )
    connection.register("incoming_scores", table)
    try:
        connection.execute(
            "INSERT INTO eval_scores (eval_id, line, scorer, score) "
            "SELECT eval_id, line, scorer, score FROM incoming_scores"
        )
    finally:
        connection.unregister("incoming_scores")
