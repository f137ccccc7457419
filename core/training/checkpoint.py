"""Save and restore, side by side: checkpoints/step-N/ and the final adapter/.

A checkpoint is `adapter/` (PEFT format, loadable on its own) plus `trainer_state.pt`,
written last, which makes the folder complete (RunPaths.latest_checkpoint looks for it).
trainer_state.pt holds only tensors and plain containers (Python's and NumPy's RNG
states as lists of ints), so it is read with `torch.load(weights_only=True)`: a file
that needs pickle to load could run code, and is refused rather than trusted, since run
directories get copied and shared.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.runs.config import RunConfig
from core.runs.rundir import RunPaths, now
from core.training.disk import DiskFull, free_bytes, require_free
from core.training.optim import TrainingParts

STATE_FILE = "trainer_state.pt"
SPACE_SLACK_BYTES = 4 * 1024 * 1024
"""Beyond the tensors: JSON, READMEs, file-format headers."""


@dataclass
class Progress:
    """The loop's position and early-stopping memory: all of it survives a resume."""

    step: int = 0
    best_val: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    best_adapter: dict[str, torch.Tensor] | None = None


class UnsafeCheckpoint(Exception):
    """A checkpoint that only pickle can read; refused with what to do instead."""


@dataclass(frozen=True, slots=True)
class SavedState:
    step: int
    folder: Path
    state: dict[str, Any]

    def restore(self, parts: TrainingParts, progress: Progress) -> None:
        from peft import set_peft_model_state_dict

        saved = self.state
        set_peft_model_state_dict(parts.model, saved["adapter"])
        parts.optimizer.load_state_dict(saved["optimizer"])
        parts.scheduler.load_state_dict(saved["scheduler"])
        if saved.get("scaler"):
            parts.scaler.load_state_dict(saved["scaler"])
        restore_rng_state(saved["rng"])
        progress.step = self.step
        progress.best_val = saved.get("best_val")
        progress.best_step = saved.get("best_step")
        progress.evals_without_improvement = saved.get("evals_without_improvement", 0)
        progress.best_adapter = saved.get("best_adapter")
        print(f"resumed from {self.folder}", file=sys.stderr)


class Checkpointer:
    def __init__(
        self, paths: RunPaths, config: RunConfig, write_event: Callable[[dict[str, Any]], None]
    ) -> None:
        self._paths = paths
        self._config = config
        self._write_event = write_event

    # -- restore ---------------------------------------------------------------------------
    def read_latest(self) -> SavedState | None:
        """The newest complete checkpoint, read without pickle (UnsafeCheckpoint if it
        needs it)."""
        latest = self._paths.latest_checkpoint()
        if latest is None:
            return None
        step, folder = latest
        path = folder / STATE_FILE
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise UnsafeCheckpoint(
                f"{path} holds Python objects that only pickle can load, and loading them "
                "could run code from the file; ftod does not load it. It was not written "
                "by this version of ftod, or it was changed since. Delete "
                f"{folder} to resume from an earlier checkpoint, or start a new run"
            ) from error
        return SavedState(step, folder, state)

    # -- save ------------------------------------------------------------------------------
    def save(self, parts: TrainingParts, progress: Progress) -> None:
        """checkpoints/step-N, unless it exists; keeps the newest `keep_checkpoints`."""
        from peft import get_peft_model_state_dict

        final = self._paths.checkpoint(progress.step)
        if (final / STATE_FILE).exists():
            return
        state = {
            "step": progress.step,
            "adapter": get_peft_model_state_dict(parts.model),
            "optimizer": parts.optimizer.state_dict(),
            "scheduler": parts.scheduler.state_dict(),
            "scaler": parts.scaler.state_dict() if parts.scaler.is_enabled() else None,
            "rng": rng_state(),
            # The data order is a function of (seed, epoch); the step fixes the position.
            "data_position": {
                "step": progress.step,
                "seed": self._config.train.seed,
                "micro_batches_done": progress.step * self._config.effective_grad_accum,
            },
            "best_val": progress.best_val,
            "best_step": progress.best_step,
            "evals_without_improvement": progress.evals_without_improvement,
            "best_adapter": progress.best_adapter,
        }
        self._paths.checkpoints.mkdir(parents=True, exist_ok=True)
        needed = tensor_bytes(state) + tensor_bytes(state["adapter"]) + SPACE_SLACK_BYTES
        require_free(self._paths.checkpoints, needed)
        tmp = self._paths.checkpoints / f".step-{progress.step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            parts.model.save_pretrained(str(tmp / "adapter"))
            _save_state(state, tmp / STATE_FILE, needed)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        self._write_event(
            {"type": "checkpoint", "time": now(), "step": progress.step, "path": str(final)}
        )
        self._prune()

    def _prune(self) -> None:
        keep = self._config.train.keep_checkpoints
        complete = sorted(
            (int(p.name.removeprefix("step-")), p)
            for p in self._paths.checkpoints.glob("step-*")
            if p.name.removeprefix("step-").isdigit()
        )
        for _step, folder in complete[:-keep]:
            shutil.rmtree(folder, ignore_errors=True)

    def save_adapter(self, model: Any, weights: dict[str, torch.Tensor] | None) -> None:
        """The run's result, adapter/ (PEFT format); `weights` replaces the model's own
        (the best eval's, when early stopping picked an earlier step)."""
        tmp = self._paths.root / ".adapter.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if weights is not None:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(model, weights)
        try:
            model.save_pretrained(str(tmp))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(self._paths.adapter, ignore_errors=True)
        os.replace(tmp, self._paths.adapter)

    def remove_partial_writes(self) -> None:
        """The temp folders a failed save leaves (a kill can leave them too)."""
        shutil.rmtree(self._paths.root / ".adapter.tmp", ignore_errors=True)
        if self._paths.checkpoints.is_dir():
            for tmp in self._paths.checkpoints.glob(".step-*.tmp"):
                shutil.rmtree(tmp, ignore_errors=True)


def _save_state(state: dict[str, Any], path: Path, needed: int) -> None:
    try:
        torch.save(state, path)
    except RuntimeError as error:
        # torch.save's C++ writer loses the errno ("unexpected pos"); a folder this short
        # of space is why it failed.
        if free_bytes(path.parent) < needed:
            raise DiskFull(path.parent, f"writing {path.name} failed: {error}") from error
        raise


def tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_bytes(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(tensor_bytes(item) for item in value)
    return 0


def rng_state() -> dict[str, Any]:
    """Every RNG the run draws from, as tensors, ints, floats and lists (no pickle)."""
    version, internal, gauss_next = random.getstate()
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "kind": str(kind),
            "keys": [int(key) for key in keys],
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["kind"],
            np.array(numpy["keys"], dtype=np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
