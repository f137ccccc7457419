"""The run directory: the only thing a trainer writes, and what every reader trusts.

    runs/<run_id>/
      run.json          written once at launch: id, name, source, resolved config, lineage
      lineage.json      runtime lineage the trainer adds (torch/CUDA versions, GPU, host)
      status.json       replaced atomically: state, reason, pid, heartbeat, step
      events.jsonl      one JSON object per line, flushed per record (see EVENT TYPES)
      system.jsonl      NVML samples, one per line
      trainer.log       the trainer's stdout and stderr
      data/             train.jsonl, val.jsonl and manifest.json (hashes)
      checkpoints/step-N/   adapter + trainer_state.pt
      adapter/          the final adapter in PEFT format

Event types (key "type"; every event has "time", unix seconds, and "step"):
  start       total_steps, attempt, resumed_from (null on the first attempt)
  train       epoch, loss, lr, grad_norm, tokens, tokens_per_s, mem_allocated,
              mem_reserved, mem_peak (bytes; null without CUDA), extra (imports only)
  eval        val_loss, val_token_accuracy
  checkpoint  path
  end         state, reason, message

Non-finite floats are written as the JSON extensions NaN/Infinity (Python's json reads
them back); a NaN loss is data, not a parse error.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from core.safefiles import atomic_write_text

RunState = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
RUN_STATES: tuple[str, ...] = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "interrupted",
)
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "interrupted"})
FAILURE_REASONS = ("oom", "nan_loss", "data_error", "model_error", "killed", "error")


@dataclass(frozen=True, slots=True)
class RunPaths:
    root: Path

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def lineage_json(self) -> Path:
        return self.root / "lineage.json"

    @property
    def status_json(self) -> Path:
        return self.root / "status.json"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def system(self) -> Path:
        return self.root / "system.jsonl"

    @property
    def log(self) -> Path:
        return self.root / "trainer.log"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def cancel_request(self) -> Path:
        """Written by `ftod runs cancel` before the signal, so the trainer knows why."""
        return self.root / "cancel.request"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step-{step}"

    def latest_checkpoint(self) -> tuple[int, Path] | None:
        """The newest complete checkpoint (one with its trainer_state.pt written last)."""
        best: tuple[int, Path] | None = None
        if not self.checkpoints.is_dir():
            return None
        for child in self.checkpoints.iterdir():
            if not child.name.startswith("step-") or not (child / "trainer_state.pt").is_file():
                continue
            try:
                step = int(child.name.removeprefix("step-"))
            except ValueError:
                continue
            if best is None or step > best[0]:
                best = (step, child)
        return best


@dataclass(frozen=True, slots=True)
class RunStatus:
    run_id: str
    state: str
    reason: str | None = None
    message: str | None = None
    pid: int | None = None
    pid_started: float | None = None
    heartbeat: float | None = None
    step: int = 0
    total_steps: int | None = None
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def with_changes(self, **changes: Any) -> RunStatus:
        return replace(self, **changes)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def now() -> float:
    return time.time()


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def new_run_id(name: str, at: float | None = None) -> str:
    """Sortable by launch time, unique without asking the store, short enough to type."""
    moment = datetime.fromtimestamp(at if at is not None else now(), UTC)
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-")[:24]
    stamp = moment.strftime("%y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(2)}" + (f"-{safe}" if safe else "")


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write to a sibling temp file, fsync, then rename: readers never see half a file."""
    atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=True, default=str))


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_status(paths: RunPaths, status: RunStatus) -> None:
    atomic_write_json(paths.status_json, status.as_json())


_STATUS_FIELDS = frozenset(RunStatus.__dataclass_fields__)


def read_status(paths: RunPaths) -> RunStatus | None:
    raw = read_json(paths.status_json)
    if raw is None or not isinstance(raw.get("state"), str):
        return None
    known = {key: value for key, value in raw.items() if key in _STATUS_FIELDS}
    known.setdefault("run_id", paths.run_id)
    try:
        return RunStatus(**known)
    except TypeError:
        return None


def process_alive(pid: int | None, started: float | None) -> bool:
    """Whether `pid` is still the process that wrote the status (pids get reused)."""
    if pid is None or pid <= 0:
        return False
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return False
    return started is None or abs(created - started) < 2.0


def process_start_time(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def observed_status(paths: RunPaths) -> RunStatus | None:
    """The status as it truly is: a non-final run whose process is gone is `interrupted`.

    Written back (atomically, only if the status did not change meanwhile) so every
    reader agrees and the run keeps the time it was found dead.
    """
    status = read_status(paths)
    if status is None or status.is_final:
        return status
    if status.state == "queued" and status.pid is None:
        return status
    if process_alive(status.pid, status.pid_started):
        return status
    again = read_status(paths)
    if again is not None and again != status:
        return again if again.is_final else observed_status(paths)
    if status.state == "queued":
        # It never got as far as writing `running`: a crash at start-up, not an interruption.
        failed = status.with_changes(
            state="failed",
            reason="error",
            message=f"the trainer exited before it started: {_last_log_line(paths)} "
            "(see trainer.log)",
            ended_at=now(),
        )
        with contextlib.suppress(OSError):
            write_status(paths, failed)
        return failed
    last_seen = status.heartbeat or status.started_at
    seen = f" (last heartbeat {iso(last_seen)})" if last_seen else ""
    interrupted = status.with_changes(
        state="interrupted",
        reason=None,
        message=f"the trainer process {status.pid} is gone{seen}; "
        f"`ftod runs resume {paths.run_id}` continues from the last checkpoint",
        ended_at=now(),
    )
    with contextlib.suppress(OSError):
        write_status(paths, interrupted)
    return interrupted


def _last_log_line(paths: RunPaths) -> str:
    try:
        with paths.log.open("rb") as handle:
            handle.seek(max(0, paths.log.stat().st_size - 4096))
            lines = [line.strip() for line in handle.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return "no output"
    lines = [line for line in lines if line]
    return lines[-1][:300] if lines else "no output"


class EventWriter:
    """Appends JSON records, flushed one by one so a reader (or a crash) sees whole lines."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("a", encoding="utf-8")
        # A writer killed mid-line (kill -9, power loss) leaves a line without its newline;
        # end it, so the first record of this writer is not glued to the broken one.
        with path.open("rb") as existing:
            existing.seek(0, os.SEEK_END)
            if existing.tell() > 0:
                existing.seek(-1, os.SEEK_END)
                if existing.read(1) != b"\n":
                    self._handle.write("\n")
                    self._handle.flush()

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        self._handle.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._handle.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True)
class TailResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    offset: int = 0
    malformed: int = 0


def read_new_records(path: Path, offset: int, max_bytes: int | None = None) -> TailResult:
    """Whole JSON lines from byte `offset` on; a line still being written is left for later.

    A file shorter than the cursor was replaced (or truncated): read from the start again.
    """
    result = TailResult(offset=offset)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < offset:
                offset = 0
            handle.seek(offset)
            data = handle.read() if max_bytes is None else handle.read(max_bytes)
    except FileNotFoundError:
        return result
    end = data.rfind(b"\n")
    if end < 0:
        result.offset = offset
        return result
    for line in data[: end + 1].splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            result.malformed += 1
            continue
        if isinstance(record, dict):
            result.records.append(record)
        else:
            result.malformed += 1
    result.offset = offset + end + 1
    return result


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    yield from read_new_records(path, 0).records


def finite_or_none(value: Any) -> float | None:
    """A float for display and sorting; NaN and infinities are kept in events, not here."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def hostname() -> str:
    return socket.gethostname()


def list_run_dirs(runs_dir: Path) -> list[RunPaths]:
    if not runs_dir.is_dir():
        return []
    return sorted(
        (RunPaths(child) for child in runs_dir.iterdir() if (child / "run.json").is_file()),
        key=lambda paths: paths.run_id,
    )
