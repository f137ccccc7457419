"""Typed reads and writes of the runs index (tables `runs`, `run_metrics`, `run_cursors`).

The run directories are the source of truth; this index is what ingest made of them, so
listing, comparing and querying never re-parse every events file. Ingest is idempotent:
metrics are keyed by (run, kind, step) and each file has a byte cursor.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import duckdb

from store.db import Store
from store.errors import NotFoundError

METRIC_COLUMNS = (
    "time",
    "epoch",
    "loss",
    "lr",
    "grad_norm",
    "tokens",
    "tokens_per_s",
    "mem_allocated",
    "mem_reserved",
    "mem_peak",
    "val_loss",
    "val_token_accuracy",
)
_INTEGER_COLUMNS = frozenset({"tokens", "mem_allocated", "mem_reserved", "mem_peak"})

# The largest whole number each integer column holds (migration 7): steps and byte counts
# are BIGINT; token counts HUGEINT, written through Arrow as DECIMAL(38, 0), hence 10^38 - 1.
BIGINT = (-(2**63), 2**63 - 1)
INTEGER_LIMITS: dict[str, tuple[int, int]] = {
    "step": BIGINT,
    "total_steps": BIGINT,
    "pid": BIGINT,
    "tokens": (-(10**38) + 1, 10**38 - 1),
    "mem_allocated": BIGINT,
    "mem_reserved": BIGINT,
    "mem_peak": BIGINT,
}


@dataclass(frozen=True, slots=True)
class RunHeader:
    """What ingest knows of a run from run.json and status.json."""

    run_id: str
    name: str
    source: str
    run_dir: str
    created_at: float | None
    state: str
    reason: str | None
    message: str | None
    pid: int | None
    step: int | None
    total_steps: int | None
    started_at: float | None
    ended_at: float | None
    heartbeat: float | None
    dataset: str | None
    base_model: str | None
    config: dict[str, Any]
    lineage: dict[str, Any]

    def fingerprint(self) -> tuple[Any, ...]:
        """The fields whose change is worth a write (the heartbeat alone is not)."""
        return (self.state, self.reason, self.message, self.pid, self.step, self.total_steps)


@dataclass(frozen=True, slots=True)
class RunRecord(RunHeader):
    """A run as indexed: its header plus summaries computed from its metrics."""

    loss: float | None
    val_loss: float | None
    best_val_loss: float | None
    best_val_step: int | None
    tokens_per_s: float | None

    def as_json(self) -> dict[str, Any]:
        return run_as_json(self)


class RunSummary(Protocol):
    """What every view of a run has, whether read from the index or from its directory."""

    @property
    def run_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def message(self) -> str | None: ...
    @property
    def step(self) -> int | None: ...
    @property
    def total_steps(self) -> int | None: ...
    @property
    def loss(self) -> float | None: ...
    @property
    def val_loss(self) -> float | None: ...
    @property
    def best_val_loss(self) -> float | None: ...
    @property
    def best_val_step(self) -> int | None: ...
    @property
    def tokens_per_s(self) -> float | None: ...
    @property
    def run_dir(self) -> str: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def created_at(self) -> float | None: ...
    @property
    def started_at(self) -> float | None: ...
    @property
    def ended_at(self) -> float | None: ...
    @property
    def heartbeat(self) -> float | None: ...
    @property
    def dataset(self) -> str | None: ...
    @property
    def base_model(self) -> str | None: ...


def run_as_json(run: RunSummary) -> dict[str, Any]:
    """The one JSON shape of a run (`runs list`, `runs show`, imports, cancels).

    A metric that is NaN or infinite (a run that diverged) is null: JSON has no token for it,
    and the run's state and reason (failed, nan_loss) say what happened.
    """
    return {
        "id": run.run_id,
        "name": run.name,
        "source": run.source,
        "state": run.state,
        "reason": run.reason,
        "message": run.message,
        "step": run.step,
        "total_steps": run.total_steps,
        "loss": _finite_or_none(run.loss),
        "val_loss": _finite_or_none(run.val_loss),
        "best_val_loss": _finite_or_none(run.best_val_loss),
        "best_val_step": run.best_val_step,
        "tokens_per_s": _finite_or_none(run.tokens_per_s),
        "run_dir": run.run_dir,
        "pid": run.pid,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "heartbeat": run.heartbeat,
        "dataset": run.dataset,
        "base_model": run.base_model,
    }


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


_RUN_COLUMNS = (
    "run_id, name, source, run_dir, created_at, state, reason, message, pid, step, "
    "total_steps, started_at, ended_at, heartbeat, dataset, base_model, config, lineage, "
    "loss, val_loss, best_val_loss, best_val_step, tokens_per_s"
)


def _record(row: Sequence[Any]) -> RunRecord:
    values = list(row)
    values[16] = json.loads(values[16]) if values[16] else {}
    values[17] = json.loads(values[17]) if values[17] else {}
    return RunRecord(*values)


@dataclass(frozen=True, slots=True)
class RunIngest:
    header: RunHeader
    metrics: list[dict[str, Any]]
    """Rows with keys run_id-less: kind, step and any of METRIC_COLUMNS, plus `extra`."""
    cursors: dict[str, int]


def _db_value(column: str, value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return None
    if column in _INTEGER_COLUMNS:
        return _integer(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def out_of_range(column: str, value: Any) -> str | None:
    """Why `value` cannot be stored in `column`, or None when it can (or is not an integer)."""
    limits = INTEGER_LIMITS.get(column)
    if limits is None or isinstance(value, bool) or not isinstance(value, int):
        return None
    low, high = limits
    if low <= value <= high:
        return None
    return f"{column} {value} is out of range (the runs index holds {low} to {high})"


def header_problem(header: RunHeader) -> str | None:
    """Why the runs table cannot hold this header, or None."""
    for column in ("step", "total_steps", "pid"):
        value = getattr(header, column)
        if value is None:
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or (isinstance(value, float) and not math.isfinite(value)):
            return f"{column} {value!r} in status.json is not a number"
        problem = out_of_range(column, int(value))
        if problem is not None:
            return problem
    return None


def metrics_problem(metrics: Sequence[dict[str, Any]]) -> str | None:
    """Why run_metrics cannot hold one of these rows (as ingest builds them), or None."""
    for column in ("step", *sorted(_INTEGER_COLUMNS)):
        low, high = INTEGER_LIMITS[column]
        # A NaN compares false and an infinity is stored as NULL: neither is out of range.
        beyond = [
            metric
            for metric in metrics
            if isinstance(value := metric.get(column), int | float)
            and (value > high or value < low)
            and not math.isinf(value)
        ]
        if beyond:
            metric = beyond[0]
            problem = out_of_range(column, int(metric[column]))
            return f"{metric.get('kind', 'metric')} row at step {metric.get('step')}: {problem}"
    return None


def _integer(value: Any) -> int | None:
    """An integer column's value as ingest writes it (a float is truncated), else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


class RunRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reads -------------------------------------------------------------------------
    def list_runs(self) -> list[RunRecord]:
        with self.store.reading() as connection:
            rows = connection.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY created_at DESC NULLS LAST, run_id DESC"
            ).fetchall()
        return [_record(row) for row in rows]

    def run(self, run_id: str) -> RunRecord:
        with self.store.reading() as connection:
            row = connection.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", [run_id]
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no run {run_id!r} in the store (see `ftod runs list`)")
        return _record(row)

    def ingest_state(self) -> dict[str, tuple[tuple[Any, ...], dict[str, int]]]:
        """Per run: the stored status fingerprint and the file cursors."""
        with self.store.reading() as connection:
            runs = connection.execute(
                "SELECT run_id, state, reason, message, pid, step, total_steps FROM runs"
            ).fetchall()
            cursors = connection.execute(
                "SELECT run_id, file, byte_offset FROM run_cursors"
            ).fetchall()
        state: dict[str, tuple[tuple[Any, ...], dict[str, int]]] = {
            row[0]: (tuple(row[1:]), {}) for row in runs
        }
        for run_id, file, offset in cursors:
            if run_id in state:
                state[run_id][1][file] = int(offset)
        return state

    def metrics(self, run_id: str, kind: str) -> dict[str, list[Any]]:
        """Columns (step plus METRIC_COLUMNS) of one run's metrics of one kind, by step."""
        columns = ("step", *METRIC_COLUMNS)
        with self.store.reading() as connection:
            rows = connection.execute(
                f"SELECT {', '.join(columns)} FROM run_metrics WHERE run_id = ? AND kind = ? "
                "ORDER BY step",
                [run_id, kind],
            ).fetchall()
        return {name: [row[i] for row in rows] for i, name in enumerate(columns)}

    def metric_count(self, run_id: str) -> dict[str, int]:
        with self.store.reading() as connection:
            rows = connection.execute(
                "SELECT kind, count(*) FROM run_metrics WHERE run_id = ? GROUP BY kind", [run_id]
            ).fetchall()
        return {kind: int(count) for kind, count in rows}

    # -- writes ------------------------------------------------------------------------
    def ingest(self, batch: Sequence[RunIngest], ingested_at: float) -> None:
        """One transaction for every run that changed: header, new metrics, cursors."""
        if not batch:
            return
        with self.store.writing() as connection:
            for item in batch:
                header = item.header
                # Summary columns are recomputed from run_metrics by _summarise below.
                connection.execute(
                    f"""INSERT OR REPLACE INTO runs ({_RUN_COLUMNS}, ingested_at)
                        VALUES ({", ".join(["?"] * 18)}, NULL, NULL, NULL, NULL, NULL, ?)""",
                    [
                        header.run_id,
                        header.name,
                        header.source,
                        header.run_dir,
                        header.created_at,
                        header.state,
                        header.reason,
                        header.message,
                        header.pid,
                        header.step,
                        header.total_steps,
                        header.started_at,
                        header.ended_at,
                        header.heartbeat,
                        header.dataset,
                        header.base_model,
                        json.dumps(_finite(header.config)),
                        json.dumps(_finite(header.lineage), default=str),
                        ingested_at,
                    ],
                )
                latest: dict[tuple[str, int], dict[str, Any]] = {}
                for metric in item.metrics:
                    latest[(metric["kind"], int(metric["step"]))] = metric
                if latest:
                    rows = [
                        [
                            header.run_id,
                            kind,
                            step,
                            *(_db_value(c, metric.get(c)) for c in METRIC_COLUMNS),
                            json.dumps(_finite(metric["extra"]), default=str)
                            if metric.get("extra")
                            else None,
                        ]
                        for (kind, step), metric in latest.items()
                    ]
                    # One Arrow scan instead of a statement per row: a 100k-step log
                    # ingests in well under a second.
                    columns = ("run_id", "kind", "step", *METRIC_COLUMNS, "extra")
                    batch_table = _metrics_table(columns, rows)
                    connection.register("incoming_metrics", batch_table)
                    try:
                        connection.execute(
                            f"INSERT OR REPLACE INTO run_metrics ({', '.join(columns)}) "
                            f"SELECT {', '.join(columns)} FROM incoming_metrics"
                        )
                    finally:
                        connection.unregister("incoming_metrics")
                for file, offset in item.cursors.items():
                    connection.execute(
                        "INSERT OR REPLACE INTO run_cursors VALUES (?, ?, ?)",
                        [header.run_id, file, offset],
                    )
                self._summarise(connection, header.run_id)

    def ingest_what_fits(self, batch: Sequence[RunIngest], ingested_at: float) -> dict[str, str]:
        """Like `ingest`, but a run the index cannot hold is left out instead of failing
        every other run with it. Returns why each left-out run was refused, by run id."""
        try:
            self.ingest(batch, ingested_at)
            return {}
        except _ROW_ERRORS:
            pass
        # The batch was rolled back as a whole: one transaction per run finds the bad ones.
        # Checked only now, so a batch that fits pays nothing for the checks.
        refused: dict[str, str] = {}
        for item in batch:
            try:
                self.ingest([item], ingested_at)
            except _ROW_ERRORS as exc:
                refused[item.header.run_id] = (
                    header_problem(item.header)
                    or metrics_problem(item.metrics)
                    or f"{type(exc).__name__}: {exc}"
                )
        return refused

    def _summarise(self, connection: Any, run_id: str) -> None:
        connection.execute(
            """UPDATE runs SET
                 loss = (SELECT loss FROM run_metrics WHERE run_id = $1 AND kind = 'train'
                         AND loss IS NOT NULL ORDER BY step DESC LIMIT 1),
                 tokens_per_s = (SELECT tokens_per_s FROM run_metrics
                                 WHERE run_id = $1 AND kind = 'train'
                                 AND tokens_per_s IS NOT NULL ORDER BY step DESC LIMIT 1),
                 val_loss = (SELECT val_loss FROM run_metrics WHERE run_id = $1
                             AND kind = 'eval' AND val_loss IS NOT NULL
                             ORDER BY step DESC LIMIT 1),
                 best_val_loss = (SELECT min(val_loss) FROM run_metrics WHERE run_id = $1
                                  AND kind = 'eval' AND isfinite(val_loss)),
                 best_val_step = (SELECT step FROM run_metrics WHERE run_id = $1
                                  AND kind = 'eval' AND isfinite(val_loss)
                                  ORDER BY val_loss, step LIMIT 1)
               WHERE run_id = $1""",
            [run_id],
        )

    def forget(self, run_id: str) -> None:
        """Drop a run whose directory is gone."""
        with self.store.writing() as connection:
            for table in ("run_metrics", "run_cursors", "runs"):
                connection.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])


# What writing one run's rows can raise when a value does not fit (DuckDB's conversion and
# constraint errors, Arrow's ArrowInvalid/ArrowTypeError, int overflow). A busy store is a
# StoreBusyError and is not among them: it is no fault of the run.
_ROW_ERRORS = (duckdb.Error, ValueError, TypeError, OverflowError, NotImplementedError)


def _metrics_table(columns: Sequence[str], rows: list[list[Any]]) -> Any:
    import pyarrow as pa

    types = {
        "run_id": pa.string(),
        "kind": pa.string(),
        "step": pa.int64(),
        "extra": pa.string(),
        **{name: pa.int64() for name in _INTEGER_COLUMNS},
        # Arrow has no 128-bit integer; DuckDB casts DECIMAL(38, 0) to the HUGEINT column.
        "tokens": pa.decimal128(38, 0),
    }
    arrays = [
        pa.array([row[index] for row in rows], type=types.get(name, pa.float64()))
        for index, name in enumerate(columns)
    ]
    return pa.Table.from_arrays(arrays, names=list(columns))


def _finite(value: Any) -> Any:
    """JSON columns reject NaN/Infinity tokens: keep them as strings ("nan", "inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
