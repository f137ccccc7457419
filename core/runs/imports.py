"""Training logs written by other tools, turned into our run directories.

The formats and how each is read live in `core.runs.importers` (one module per format, the
list in its registry); this module keeps the names the CLI and scripts use and writes the
run directory an imported log becomes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from core.runs import rundir
from core.runs.importers.base import MAX_BYTES, ImportedLog, read_bytes
from core.runs.importers.events import as_int
from core.runs.importers.registry import EXPECTED, FORMATS, detect_format, read_log
from core.runs.ingest import metric_rows
from core.runs.names import sanitize_run_name
from core.runs.rundir import RunPaths, RunStatus
from store.errors import InputError
from store.runs import metrics_problem, out_of_range

__all__ = [
    "EXPECTED",
    "FORMATS",
    "LOG_FILE_NAMES",
    "MAX_BYTES",
    "ImportedLog",
    "create_imported_run",
    "detect_format",
    "find_training_log",
    "parse_training_log",
]


def parse_training_log(path: Path) -> ImportedLog:
    """Read a training log written by another tool; InputError when it cannot be used."""
    return read_log(read_bytes(path, EXPECTED), path)


# Names tools give every run's file: the folder says more about which run it was.
_GENERIC_STEMS = frozenset(
    {"trainer_state", "trainer_log", "results", "result", "log", "logs", "train", "training"}
    | {"stdout", "output", "out", "cmd", "metrics"}
)


def _default_name(source: Path) -> str:
    """The file stem, or the folder it sits in when the stem is a tool's fixed file name."""
    stem = source.stem
    if stem.lower() not in _GENERIC_STEMS:
        return stem
    for parent in source.resolve().parents:
        if parent.name and not parent.name.startswith("checkpoint-"):
            return f"{parent.name}-{stem}"
    return stem


def create_imported_run(runs_dir: Path, source: Path, *, name: str | None = None) -> RunPaths:
    """Import `source` as a finished (or interrupted) run under `runs_dir`, all or nothing."""
    data = read_bytes(source, EXPECTED)
    log = read_log(data, source)
    run_name = sanitize_run_name(name or _default_name(source))
    created = rundir.now()
    run_id = rundir.new_run_id(run_name, created)
    _refuse_what_the_index_cannot_hold(source, _imported_status(run_id, source.name, log), log)
    absolute = str(source.resolve())
    digest = hashlib.sha256(data).hexdigest()

    runs_dir.mkdir(parents=True, exist_ok=True)
    final = runs_dir / run_id
    # Built under a hidden name and renamed: a reader never sees half a run, and a failure
    # leaves nothing behind. run.json (what list_run_dirs looks for) is written last.
    building = runs_dir / f".{run_id}.importing"
    building.mkdir()
    try:
        paths = RunPaths(building)
        copy_dir = building / "source"
        copy_dir.mkdir()
        (copy_dir / source.name).write_bytes(data)
        with rundir.EventWriter(paths.events) as writer:
            writer.write(
                {
                    "type": "start",
                    "time": None,
                    "step": 0,
                    "total_steps": log.total_steps,
                    "attempt": 1,
                    "resumed_from": None,
                }
            )
            for event in log.events:
                writer.write(event)
        rundir.write_status(paths, _imported_status(run_id, source.name, log))
        rundir.atomic_write_json(
            paths.run_json,
            {
                "run_id": run_id,
                "name": run_name,
                "created_at": created,
                "source": log.format,
                "imported_from": absolute,
                "source_sha256": digest,
                "config": {},
                "lineage": {
                    "imported_from": absolute,
                    "source_sha256": digest,
                    "format": log.format,
                },
                "summary": log.summary,
                "warnings": log.warnings,
            },
        )
        os.rename(building, final)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return RunPaths(final)


def _refuse_what_the_index_cannot_hold(source: Path, status: RunStatus, log: ImportedLog) -> None:
    """InputError before anything is written when ingest could not store the run: a run
    directory the index cannot hold would be skipped by every later command."""
    problem = (
        out_of_range("step", status.step)
        or out_of_range("total_steps", status.total_steps)
        or metrics_problem(metric_rows(log.events))
    )
    if problem is not None:
        raise InputError(f"{source}: {problem}; nothing was imported", title="Value out of range")


def _last_step(log: ImportedLog) -> int:
    train = [int(event["step"]) for event in log.events if event["type"] == "train"]
    if train:
        return max(train)
    if log.events:
        return max(int(event["step"]) for event in log.events)
    return as_int(log.summary.get("step")) or as_int(log.summary.get("global_step")) or 0


def _imported_status(run_id: str, file_name: str, log: ImportedLog) -> RunStatus:
    step = _last_step(log)
    message = f"imported from {file_name} ({log.format})"
    if log.completed is True:
        state = "succeeded"
    else:
        state = "interrupted"
        # An eval after the last train row still shows how far the log got.
        ends = max([step, *(int(event["step"]) for event in log.events)])
        of = f" of {log.total_steps}" if log.total_steps is not None else ""
        message += f"; the log ends at step {ends}{of}"
        if log.completed is None:
            message += " and does not show whether the run finished"
    return RunStatus(
        run_id=run_id, state=state, step=step, total_steps=log.total_steps, message=message
    )


LOG_FILE_NAMES = ("trainer_log.jsonl", "trainer_state.json")


def find_training_log(folder: Path) -> Path:
    """The training log inside an output folder, as the tools that write them lay it out.

    LLaMA-Factory's trainer_log.jsonl, else the top-level trainer_state.json (written at
    the end), else the one of the newest `checkpoint-N` (a run that never finished).
    """
    for name in LOG_FILE_NAMES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    checkpoints = []
    for child in folder.glob("checkpoint-*"):
        suffix = child.name.removeprefix("checkpoint-")
        if suffix.isdigit() and (child / "trainer_state.json").is_file():
            checkpoints.append((int(suffix), child / "trainer_state.json"))
    if checkpoints:
        return max(checkpoints)[1]
    raise InputError(
        f"{folder}: no trainer_log.jsonl, trainer_state.json or checkpoint-N/trainer_state.json "
        "here; pass the log file itself"
    )
