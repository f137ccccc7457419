"""Preparing a run directory and starting, resuming and cancelling its trainer process.

The trainer is started in a new session with its output to trainer.log, so closing the
terminal or the dashboard never stops training; everything afterwards goes through the
run directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.datasets import export_dataset
from core.runs.config import RunConfig
from core.runs.names import check_run_name
from core.runs.rundir import (
    RunPaths,
    RunStatus,
    atomic_write_json,
    hostname,
    new_run_id,
    now,
    observed_status,
    process_alive,
    process_start_time,
    read_json,
    read_status,
    write_status,
)
from core.runs.validate import ResolvedData, ResolvedModel, validate_data, validate_model
from core.source import file_sha256
from store.datasets import DatasetRepository
from store.errors import FtodError, InputError, NotFoundError
from store.workspace import Workspace

CANCEL_GRACE_SECONDS = 30.0


class RunStateError(FtodError):
    title = "Run state"


def ftod_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ftod")
    except PackageNotFoundError:
        return "unknown"


def git_state(folder: Path) -> dict[str, Any]:
    """Commit and dirty flag of the repository holding `folder`, when there is one."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"git_commit": None, "git_dirty": None}
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return {"git_commit": commit.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}


@dataclass(frozen=True, slots=True)
class PreparedRun:
    paths: RunPaths
    model: ResolvedModel
    data: ResolvedData


def prepare_run(
    workspace: Workspace,
    repository: DatasetRepository,
    config: RunConfig,
    *,
    allow_download: bool = False,
    config_path: Path | None = None,
) -> PreparedRun:
    """Validate, then write the run directory (config, data, lineage, queued status).

    Built under a hidden temporary name and renamed into place, so a failure leaves no
    half-made run behind.
    """
    check_run_name(config.name)
    data = validate_data(config, repository)
    model = validate_model(
        config, allow_download=allow_download, cache_dir=workspace.root / "cache"
    )
    run_id = new_run_id(config.name)
    workspace.runs_dir.mkdir(parents=True, exist_ok=True)
    tmp = workspace.runs_dir / f".{run_id}.tmp"
    paths = RunPaths(workspace.runs_dir / run_id)
    staging = RunPaths(tmp)
    try:
        staging.data_dir.mkdir(parents=True)
        hashes: dict[str, Any] = {}
        for role, split in (("train", config.train_split), ("val", config.val_split)):
            if role == "val" and split is None:
                continue
            target = staging.data_dir / f"{role}.jsonl"
            _version, rows = export_dataset(repository, data.version.ref, target, split=split)
            if rows == 0:
                raise InputError(
                    f"{data.version.ref} split {split or '(whole version)'} has no valid rows "
                    f"for {role}"
                )
            hashes[role] = {"split": split, "rows": rows, "sha256": file_sha256(target)}
        atomic_write_json(staging.data_dir / "manifest.json", hashes)
        split_hashes = {}
        if data.split is not None:
            split_hashes = {
                name: info.get("sha256")
                for name, info in data.split.manifest.get("splits", {}).items()
            }
        model_config = config
        if model.revision is None and Path(config.base_model).expanduser().is_dir():
            # A folder is recorded by its absolute path, so the run does not depend on the
            # directory it was launched from.
            from dataclasses import replace

            model_config = replace(config, base_model=str(model.path))
        lineage = {
            "dataset": data.version.ref,
            "dataset_sha256": data.version.sha256,
            "split_id": data.split.split_id if data.split else None,
            "split_hashes": split_hashes,
            "data_files": hashes,
            "base_model": config.base_model,
            "base_model_path": str(model.path),
            "base_model_revision": model.revision,
            "base_model_weights_sha256": model.weights_sha256,
            "model_type": model.model_type,
            "model_parameters": model.parameters,
            "config_hash": model_config.config_hash(),
            "ftod_version": ftod_version(),
            "seed": config.train.seed,
            "launch_host": hostname(),
            "launch_cwd": str(Path.cwd()),
            **git_state(Path.cwd()),
        }
        atomic_write_json(
            staging.run_json,
            {
                "run_id": run_id,
                "name": config.name or run_id,
                "created_at": now(),
                "source": "ftod",
                "config": model_config.as_json(),
                "config_path": str(config_path.resolve()) if config_path else None,
                "lineage": lineage,
                "allow_download": allow_download,
            },
        )
        (tmp / "config.yaml").write_text(model_config.as_yaml(), encoding="utf-8")
        write_status(staging, RunStatus(run_id=run_id, state="queued", message="queued"))
        os.replace(tmp, paths.root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PreparedRun(paths, model, data)


def start_trainer(paths: RunPaths, *, python: str | None = None) -> int:
    """Start `python -m core.train RUN_DIR` detached; returns its pid."""
    run = read_json(paths.run_json) or {}
    env = dict(os.environ)
    if not run.get("allow_download"):
        env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    # The trainer must import this very checkout of ftod, wherever it is launched from.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(
        [package_root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    with paths.log.open("ab") as log:
        process = subprocess.Popen(
            [python or sys.executable, "-m", "core.train", str(paths.root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(paths.root),
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    status = read_status(paths) or RunStatus(run_id=paths.run_id, state="queued")
    if status.state == "queued" or status.is_final:
        write_status(
            paths,
            status.with_changes(
                state="queued",
                reason=None,
                message="starting the trainer",
                pid=process.pid,
                pid_started=process_start_time(process.pid),
                heartbeat=now(),
                ended_at=None,
            ),
        )
    _forget_child(process)
    return process.pid


def _forget_child(process: subprocess.Popen[bytes]) -> None:
    """Reap the trainer when it exits if we are still around, without ever waiting on it.

    A detached trainer outlives us; while we live, an unreaped child would be a zombie
    that looks alive to a pid check.
    """
    import threading

    threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()


def resume_run(paths: RunPaths) -> int:
    status = observed_status(paths)
    if status is None:
        raise NotFoundError(f"run {paths.run_id}: no status.json; not a run ftod can resume")
    run = read_json(paths.run_json) or {}
    if run.get("source") != "ftod":
        raise RunStateError(
            f"run {paths.run_id} was imported ({run.get('source')}); "
            "only runs trained by ftod can be resumed"
        )
    if status.state in ("queued", "running"):
        raise RunStateError(f"run {paths.run_id} is {status.state} (pid {status.pid})")
    if status.state == "succeeded":
        raise RunStateError(f"run {paths.run_id} already succeeded; nothing to resume")
    if paths.cancel_request.exists():
        paths.cancel_request.unlink()
    write_status(
        paths,
        status.with_changes(state="queued", reason=None, message="resuming", ended_at=None),
    )
    return start_trainer(paths)


def cancel_run(
    paths: RunPaths, *, grace_seconds: float = CANCEL_GRACE_SECONDS, wait: bool = True
) -> RunStatus:
    """SIGTERM (the trainer checkpoints and ends `cancelled`), SIGKILL after the grace."""
    status = observed_status(paths)
    if status is None:
        raise NotFoundError(f"run {paths.run_id}: no status.json")
    if status.is_final:
        raise RunStateError(f"run {paths.run_id} is already {status.state}")
    paths.cancel_request.write_text(f"{now()}\n")
    if status.pid is None or not process_alive(status.pid, status.pid_started):
        cancelled = status.with_changes(
            state="cancelled", message="cancelled before the trainer started", ended_at=now()
        )
        write_status(paths, cancelled)
        return cancelled
    with contextlib.suppress(ProcessLookupError):
        os.kill(status.pid, signal.SIGTERM)
    if not wait:
        return status
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        current = read_status(paths)
        if current is not None and current.is_final:
            return current
        if not process_alive(status.pid, status.pid_started):
            break
        time.sleep(0.2)
    current = read_status(paths)
    if current is not None and current.is_final:
        return current
    with contextlib.suppress(ProcessLookupError):
        os.kill(status.pid, signal.SIGKILL)
    killed = (current or status).with_changes(
        state="cancelled",
        message=f"did not stop within {grace_seconds:.0f} s of SIGTERM; killed (SIGKILL). "
        "Steps after the last checkpoint are lost",
        ended_at=now(),
    )
    write_status(paths, killed)
    return killed


def find_run(workspace: Workspace, run_ref: str) -> RunPaths:
    """A run by its id, a unique prefix of it, or its name (the newest of that name)."""
    runs_dir = workspace.runs_dir
    # Only a single, short path component can name a run folder; anything else (a NUL, a
    # slash, a name past the file system's 255 bytes) would raise from the OS, not miss.
    is_folder_name = (
        bool(run_ref)
        and "/" not in run_ref
        and "\x00" not in run_ref
        and len(run_ref.encode("utf-8", "surrogateescape")) <= 255
    )
    if is_folder_name and (runs_dir / run_ref / "run.json").is_file():
        return RunPaths(runs_dir / run_ref)
    candidates = (
        sorted(p.name for p in runs_dir.glob("*") if (p / "run.json").is_file())
        if runs_dir.is_dir()
        else []
    )
    prefixed = [name for name in candidates if name.startswith(run_ref)]
    if len(prefixed) == 1:
        return RunPaths(runs_dir / prefixed[0])
    named = [
        name
        for name in candidates
        if (read_json(runs_dir / name / "run.json") or {}).get("name") == run_ref
    ]
    if named:
        return RunPaths(runs_dir / named[-1])
    if len(prefixed) > 1:
        raise InputError(f"run {run_ref!r} is ambiguous: {', '.join(prefixed[:5])}")
    shown = run_ref if len(run_ref) <= 80 else run_ref[:80] + "…"
    raise NotFoundError(f"no run {shown!r} (see `ftod runs list`)")
