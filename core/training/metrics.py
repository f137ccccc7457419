"""The logged step still in flight: staged on the device, read back one step later.

Reading a loss forces the host to wait for the GPU; staging the values with an
asynchronous copy and reading them after the next step is queued keeps the GPU busy while
the host writes the record. `StepMetrics` holds at most one such step and the clocks for
step time and tokens/s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from core.runs.rundir import now


class NanLoss(Exception):
    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"loss {loss} at step {step}")
        self.step = step
        self.loss = loss


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one optimizer step leaves for the log, still as device tensors."""

    loss_sum: torch.Tensor
    grad_norm: torch.Tensor
    metric_sums: dict[str, torch.Tensor]
    tokens: int
    loss_tokens: int
    lr: float


@dataclass(frozen=True, slots=True)
class _Staged:
    step: int
    values: torch.Tensor
    """loss sum, grad norm, then the objective's metric sums, in `metric_names` order."""
    metric_names: tuple[str, ...]
    ready: Any
    tokens: int
    loss_tokens: int
    lr: float
    epoch: float
    staged_at: float
    window_tokens: int
    """Tokens of every step since the previous logged one, for tokens/s."""


class StepMetrics:
    def __init__(
        self,
        device: torch.device,
        write: Callable[[dict[str, Any]], None] | None,
        on_logged: Callable[[int], None],
    ) -> None:
        """`write` takes each train record (None: not written, as with monitoring off);
        `on_logged` is told each step read back, written or not."""
        self._device = device
        self._write = write
        self._on_logged = on_logged
        self._pending: _Staged | None = None
        self._tokens_unreported = 0
        self._last_readout = time.perf_counter()
        self._last_event: Any = None

    def restart_clock(self) -> None:
        """After an eval or a checkpoint, so their time is not counted as a step's."""
        self._last_event = None
        self._last_readout = time.perf_counter()

    def count(self, tokens: int) -> None:
        self._tokens_unreported += tokens

    def stage(self, step: int, result: StepResult, epoch: float) -> None:
        names = tuple(result.metric_sums)
        values = torch.stack(
            [
                result.loss_sum.float(),
                result.grad_norm.float().to(result.loss_sum.device),
                *(result.metric_sums[name].float() for name in names),
            ]
        )
        ready: Any = None
        if values.is_cuda:
            host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            host.copy_(values, non_blocking=True)
            ready = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            ready.record()
            values = host
        self._pending = _Staged(
            step=step,
            values=values,
            metric_names=names,
            ready=ready,
            tokens=result.tokens,
            loss_tokens=result.loss_tokens,
            lr=result.lr,
            epoch=epoch,
            staged_at=time.perf_counter(),
            window_tokens=self._tokens_unreported,
        )
        self._tokens_unreported = 0

    def flush(self) -> None:
        """Read back and record the staged step, if any; raises NanLoss after recording a
        loss that is not finite."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._emit(pending)

    def _emit(self, pending: _Staged) -> None:
        if pending.ready is not None:
            pending.ready.synchronize()
        loss_sum, grad_norm, *metric_sums = (float(v) for v in pending.values.tolist())
        loss = loss_sum / max(1, pending.loss_tokens)
        # Step time is measured between step ends: on the GPU by its own events (the host
        # runs ahead of it), on the CPU by the host clock when the step returned.
        if pending.ready is not None and self._last_event is not None:
            elapsed = self._last_event.elapsed_time(pending.ready) / 1000.0
        elif pending.ready is not None:
            elapsed = time.perf_counter() - self._last_readout
        else:
            elapsed = pending.staged_at - self._last_readout
        self._last_event = pending.ready
        self._last_readout = pending.staged_at if pending.ready is None else time.perf_counter()
        tokens_per_s = pending.window_tokens / max(1e-9, elapsed)
        record: dict[str, Any] = {
            "type": "train",
            "time": now(),
            "step": pending.step,
            "epoch": round(pending.epoch, 6),
            "loss": loss,
            "lr": pending.lr,
            "grad_norm": grad_norm,
            "tokens": pending.tokens,
            "loss_tokens": pending.loss_tokens,
            "tokens_per_s": tokens_per_s,
            "mem_allocated": None,
            "mem_reserved": None,
            "mem_peak": None,
        }
        if self._device.type == "cuda":
            record["mem_allocated"] = torch.cuda.memory_allocated()
            record["mem_reserved"] = torch.cuda.memory_reserved()
            record["mem_peak"] = torch.cuda.max_memory_allocated()
        for name, total in zip(pending.metric_names, metric_sums, strict=True):
            record[name] = total / max(1, pending.loss_tokens)
        if self._write is not None:
            self._write(record)
        self._on_logged(pending.step)
        if not math.isfinite(loss):
            raise NanLoss(pending.step, loss)
