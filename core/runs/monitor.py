"""Live views of runs, read straight from their directories (never the store).

`RunTail` keeps one run's series in memory and reads only the new whole lines of
events.jsonl on each poll, so a dashboard refreshing every second costs a stat and a
small read per run. `RunsMonitor` does that for every run of a workspace.
"""

from __future__ import annotations

import math
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.gpu import GpuSnapshot
from core.runs.rundir import (
    FINAL_STATES,
    RunPaths,
    RunStatus,
    list_run_dirs,
    now,
    observed_status,
    read_json,
    read_new_records,
)
from store.runs import run_as_json

RATE_WINDOW = 20


@dataclass(frozen=True, slots=True)
class RunView:
    run_id: str
    name: str
    source: str
    state: str
    reason: str | None
    message: str | None
    pid: int | None
    step: int
    total_steps: int | None
    loss: float | None
    val_loss: float | None
    best_val_loss: float | None
    best_val_step: int | None
    tokens_per_s: float | None
    eta_seconds: float | None
    started_at: float | None
    ended_at: float | None
    heartbeat: float | None
    run_dir: str
    gpu_name: str | None
    dataset: str | None
    base_model: str | None
    logged_steps: int
    created_at: float | None

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def progress(self) -> float | None:
        if not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)

    def as_json(self) -> dict[str, Any]:
        """The run's JSON (the same shape `runs list` prints) plus what only a live view
        knows: the time left and the GPU it runs on."""
        return {
            **run_as_json(self),
            "eta_seconds": self.eta_seconds,
            "gpu_name": self.gpu_name,
            "logged_steps": self.logged_steps,
        }


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(slots=True)
class Series:
    """One run's logged metrics, by step; a re-logged step (after a resume) replaces the old."""

    train_steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float | None] = field(default_factory=list)
    grad_norm: list[float | None] = field(default_factory=list)
    tokens_per_s: list[float | None] = field(default_factory=list)
    mem_allocated: list[float | None] = field(default_factory=list)
    mem_reserved: list[float | None] = field(default_factory=list)
    mem_peak: list[float | None] = field(default_factory=list)
    times: list[float | None] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float | None] = field(default_factory=list)
    resume_steps: list[int] = field(default_factory=list)
    total_steps: int | None = None

    def _truncate_train_from(self, step: int) -> None:
        # A resumed attempt restarts after its checkpoint: the steps the previous attempt
        # logged past that point are replaced by the new ones.
        while self.train_steps and self.train_steps[-1] >= step:
            for column in (
                self.train_steps,
                self.loss,
                self.lr,
                self.grad_norm,
                self.tokens_per_s,
                self.mem_allocated,
                self.mem_reserved,
                self.mem_peak,
                self.times,
            ):
                column.pop()

    def _truncate_eval_from(self, step: int) -> None:
        while self.eval_steps and self.eval_steps[-1] >= step:
            self.eval_steps.pop()
            self.val_loss.pop()
            self.val_accuracy.pop()

    def add(self, record: dict[str, Any]) -> None:
        kind = record.get("type")
        step = record.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            return
        if kind == "train":
            self._truncate_train_from(step)
            loss = _as_float(record.get("loss"))
            self.train_steps.append(step)
            self.loss.append(loss if loss is not None else math.nan)
            self.lr.append(_as_float(record.get("lr")))
            self.grad_norm.append(_as_float(record.get("grad_norm")))
            self.tokens_per_s.append(_as_float(record.get("tokens_per_s")))
            self.mem_allocated.append(_as_float(record.get("mem_allocated")))
            self.mem_reserved.append(_as_float(record.get("mem_reserved")))
            self.mem_peak.append(_as_float(record.get("mem_peak")))
            self.times.append(_as_float(record.get("time")))
        elif kind == "eval":
            val = _as_float(record.get("val_loss"))
            if val is None:
                return
            self._truncate_eval_from(step)
            self.eval_steps.append(step)
            self.val_loss.append(val)
            self.val_accuracy.append(_as_float(record.get("val_token_accuracy")))
        elif kind == "start":
            total = record.get("total_steps")
            if isinstance(total, int) and not isinstance(total, bool):
                self.total_steps = total
            resumed = record.get("resumed_from")
            if isinstance(resumed, int) and not isinstance(resumed, bool):
                self.resume_steps.append(resumed)
                self._truncate_train_from(resumed + 1)
                self._truncate_eval_from(resumed + 1)

    def copy(self) -> Series:
        """A snapshot for another thread: the lists are copied, the numbers shared."""
        fields: dict[str, Any] = {
            name: list(value) if isinstance(value, list) else value
            for name, value in ((f, getattr(self, f)) for f in self.__dataclass_fields__)
        }
        return Series(**fields)

    def latest(self, values: list[float | None] | list[float]) -> float | None:
        for value in reversed(values):
            if value is not None:
                return value
        return None

    def best_val(self) -> tuple[float | None, int | None]:
        best: tuple[float | None, int | None] = (None, None)
        for step, value in zip(self.eval_steps, self.val_loss, strict=True):
            if math.isfinite(value) and (best[0] is None or value < best[0]):
                best = (value, step)
        return best

    def steps_per_second(self) -> float | None:
        points = [
            (s, t)
            for s, t in zip(self.train_steps[-RATE_WINDOW:], self.times[-RATE_WINDOW:], strict=True)
            if t is not None
        ]
        if len(points) < 2:
            return None
        (s0, t0), (s1, t1) = points[0], points[-1]
        if t1 <= t0 or s1 <= s0:
            return None
        return (s1 - s0) / (t1 - t0)


class RunTail:
    """One run followed incrementally."""

    def __init__(self, paths: RunPaths) -> None:
        self.paths = paths
        self.series = Series()
        self._offset = 0
        self._run: dict[str, Any] = {}
        self._lineage: dict[str, Any] = {}
        self._status: RunStatus | None = None
        self._status_mtime: float | None = None
        self.malformed_lines = 0
        self.view = self._make_view()

    @property
    def run(self) -> dict[str, Any]:
        return self._run

    @property
    def lineage(self) -> dict[str, Any]:
        merged = dict(self._run.get("lineage") or {})
        merged.update(self._lineage)
        return merged

    @property
    def offset(self) -> int:
        """Bytes of events.jsonl read so far: a change means new records."""
        return self._offset

    def poll(self) -> RunView:
        if not self._run:
            self._run = read_json(self.paths.run_json) or {}
        if not self._lineage or self._status is None or not self._status.is_final:
            self._lineage = read_json(self.paths.lineage_json) or {}
        tail = read_new_records(self.paths.events, self._offset)
        if tail.offset < self._offset:
            self.series = Series()  # the file was replaced: start over
        self._offset = tail.offset
        self.malformed_lines += tail.malformed
        for record in tail.records:
            self.series.add(record)
        self._status = self._read_status()
        self.view = self._make_view()
        return self.view

    def _read_status(self) -> RunStatus | None:
        try:
            mtime = os.stat(self.paths.status_json).st_mtime
        except FileNotFoundError:
            return None
        if self._status is not None and self._status.is_final and mtime == self._status_mtime:
            return self._status
        self._status_mtime = mtime
        return observed_status(self.paths)

    def _make_view(self) -> RunView:
        status = self._status
        series = self.series
        config = self._run.get("config") if isinstance(self._run.get("config"), dict) else {}
        lineage = self.lineage
        step = status.step if status else 0
        if series.train_steps:
            step = max(step, series.train_steps[-1])
        total = (status.total_steps if status else None) or series.total_steps
        state = status.state if status else "queued"
        eta = None
        rate = series.steps_per_second()
        if state == "running" and rate and total:
            eta = max(0.0, (total - step) / rate)
        best, best_step = series.best_val()
        return RunView(
            run_id=self.paths.run_id,
            name=str(self._run.get("name") or self.paths.run_id),
            source=str(self._run.get("source") or "ftod"),
            state=state,
            reason=status.reason if status else None,
            message=status.message if status else None,
            pid=status.pid if status else None,
            step=step,
            total_steps=total,
            loss=series.latest(series.loss) if series.loss else None,
            val_loss=series.val_loss[-1] if series.val_loss else None,
            best_val_loss=best,
            best_val_step=best_step,
            tokens_per_s=series.latest(series.tokens_per_s),
            eta_seconds=eta,
            started_at=status.started_at if status else None,
            ended_at=status.ended_at if status else None,
            heartbeat=status.heartbeat if status else None,
            run_dir=str(self.paths.root),
            gpu_name=lineage.get("gpu_name"),
            dataset=(config or {}).get("dataset"),
            base_model=(config or {}).get("base_model") or lineage.get("base_model"),
            logged_steps=len(series.train_steps),
            created_at=_as_float(self._run.get("created_at")),
        )


class SystemTail:
    """The NVML samples of a run (system.jsonl), the most recent `keep` of them."""

    def __init__(self, path: Path, keep: int = 1200) -> None:
        self.path = path
        self._offset = 0
        self.snapshots: deque[GpuSnapshot] = deque(maxlen=keep)

    def poll(self) -> bool:
        from core.gpu import record_to_snapshot

        tail = read_new_records(self.path, self._offset)
        if tail.offset < self._offset:
            self.snapshots.clear()
        self._offset = tail.offset
        for record in tail.records:
            snapshot = record_to_snapshot(record)
            if snapshot is not None:
                self.snapshots.append(snapshot)
        return bool(tail.records)


def read_run(paths: RunPaths) -> RunView:
    return RunTail(paths).poll()


class RunsMonitor:
    """Every run of a workspace, each followed by a RunTail; new run dirs are picked up."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self.tails: dict[str, RunTail] = {}

    def poll(self) -> list[RunView]:
        present = {paths.run_id: paths for paths in list_run_dirs(self.runs_dir)}
        for run_id in list(self.tails):
            if run_id not in present:
                del self.tails[run_id]
        views = []
        for run_id, paths in present.items():
            tail = self.tails.get(run_id)
            if tail is None:
                tail = self.tails[run_id] = RunTail(paths)
                views.append(tail.poll())
            else:
                # Final runs too: a cancelled or interrupted run can be resumed.
                views.append(tail.poll())
        views.sort(key=lambda view: (view.created_at or 0, view.run_id), reverse=True)
        return views


def log_tail(path: Path, lines: int, max_bytes: int = 1 << 20) -> tuple[list[str], int]:
    """The last `lines` lines of a log (progress-bar carriage returns resolved) and its end."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except FileNotFoundError:
        return [], 0
    text = data.decode("utf-8", "replace")
    result: deque[str] = deque(maxlen=max(0, lines))
    for line in text.split("\n"):
        line = line.rstrip("\r")
        result.append(line.rsplit("\r", 1)[-1] if "\r" in line else line)
    return list(result), size


def seconds_since(timestamp: float | None) -> float | None:
    return None if timestamp is None else max(0.0, now() - timestamp)
