"""Bringing run directories into the store's index, idempotently.

Each events file has a byte cursor in the store; only whole new lines are read, a step is
keyed by (run, kind, step) so re-reading never stores it twice, and a resumed run that
logs a step again replaces it. Nothing is written when nothing changed, so a dashboard
polling this never holds the store's write lock for no reason.

One run directory that cannot be read or indexed (a hand-edited status.json, a value too
large for the index) is skipped with its reason in the report, and every other run is
ingested: a bad folder must never take the workspace's runs down with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.runs.rundir import (
    RunPaths,
    RunStatus,
    list_run_dirs,
    now,
    observed_status,
    read_json,
    read_new_records,
)
from store.runs import METRIC_COLUMNS, RunHeader, RunIngest, RunRepository
from store.workspace import Workspace

EVENTS_FILE = "events.jsonl"


@dataclass(frozen=True, slots=True)
class SkippedRun:
    """A run directory ingest left out, and why (shown to the person as a warning)."""

    run_id: str
    run_dir: str
    reason: str

    def warning(self) -> str:
        return f"run directory {self.run_dir} was skipped: {self.reason}"


@dataclass(slots=True)
class IngestReport:
    runs_seen: int = 0
    runs_updated: int = 0
    metrics_added: int = 0
    malformed_lines: int = 0
    forgotten: list[str] = field(default_factory=list)
    skipped: list[SkippedRun] = field(default_factory=list)


def header_for(paths: RunPaths, status: RunStatus | None) -> RunHeader | None:
    run = read_json(paths.run_json)
    if run is None:
        return None
    config = run.get("config") if isinstance(run.get("config"), dict) else {}
    lineage = dict(run.get("lineage") or {})
    runtime = read_json(paths.lineage_json)
    if runtime:
        lineage.update(runtime)
    state = status.state if status else "queued"
    return RunHeader(
        run_id=paths.run_id,
        name=str(run.get("name") or paths.run_id),
        source=str(run.get("source") or "ftod"),
        run_dir=str(paths.root),
        created_at=_float(run.get("created_at")),
        state=state,
        reason=status.reason if status else None,
        message=status.message if status else None,
        pid=status.pid if status else None,
        step=status.step if status else None,
        total_steps=status.total_steps if status else None,
        started_at=status.started_at if status else None,
        ended_at=status.ended_at if status else None,
        heartbeat=status.heartbeat if status else None,
        dataset=(config or {}).get("dataset"),
        base_model=(config or {}).get("base_model") or lineage.get("base_model"),
        config=config or {},
        lineage=lineage,
    )


def _float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def metric_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for record in records:
        kind = record.get("type")
        step = record.get("step")
        if kind not in ("train", "eval") or isinstance(step, bool) or not isinstance(step, int):
            continue
        row: dict[str, Any] = {"kind": kind, "step": step}
        for column in METRIC_COLUMNS:
            if column in record:
                row[column] = record[column]
        extra = {
            key: value
            for key, value in record.items()
            if key not in row and key not in ("type", "extra")
        }
        if isinstance(record.get("extra"), dict):
            extra.update(record["extra"])
        if extra:
            row["extra"] = extra
        rows.append(row)
    return rows


# What reading one run directory can raise on content nobody foresaw (a status.json whose
# fields have the wrong types, an unreadable file); it skips that run, not the ingest.
_READ_ERRORS = (OSError, ValueError, TypeError, KeyError, AttributeError, OverflowError)


def ingest_runs(workspace: Workspace, repository: RunRepository) -> IngestReport:
    report = IngestReport()
    known = repository.ingest_state()
    batch: list[RunIngest] = []
    present: set[str] = set()
    folders: dict[str, str] = {}
    for paths in list_run_dirs(workspace.runs_dir):
        report.runs_seen += 1
        present.add(paths.run_id)
        folders[paths.run_id] = str(paths.root)
        try:
            item = _changes(paths, known.get(paths.run_id, (None, {})))
        except _READ_ERRORS as exc:
            report.skipped.append(
                SkippedRun(paths.run_id, str(paths.root), f"{type(exc).__name__}: {exc}")
            )
            continue
        if item is None:
            continue
        ingest, malformed = item
        report.malformed_lines += malformed
        batch.append(ingest)
    refused = repository.ingest_what_fits(batch, now())
    for run_id, reason in sorted(refused.items()):
        report.skipped.append(SkippedRun(run_id, folders[run_id], reason))
    written = [item for item in batch if item.header.run_id not in refused]
    report.runs_updated = len(written)
    report.metrics_added = sum(len(item.metrics) for item in written)
    for run_id in sorted(set(known) - present):
        # A run directory deleted by hand leaves the index too.
        repository.forget(run_id)
        report.forgotten.append(run_id)
    return report


def _changes(
    paths: RunPaths, stored: tuple[tuple[Any, ...] | None, dict[str, int]]
) -> tuple[RunIngest, int] | None:
    """What is new in one run directory since the stored cursor, or None when nothing is."""
    status = observed_status(paths)
    header = header_for(paths, status)
    if header is None:
        return None
    stored_fingerprint, cursors = stored
    offset = cursors.get(EVENTS_FILE, 0)
    try:
        size = paths.events.stat().st_size
    except FileNotFoundError:
        size = 0
    if stored_fingerprint == header.fingerprint() and size == offset:
        return None
    tail = read_new_records(paths.events, offset)
    rows = metric_rows(tail.records)
    return RunIngest(header, rows, {EVENTS_FILE: tail.offset}), tail.malformed
