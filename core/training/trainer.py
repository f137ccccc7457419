"""The LoRA/QLoRA trainer: `python -m core.train RUN_DIR`, in its own session.

It reads only its run directory and writes only there (never DuckDB): status.json
(atomically), events.jsonl (a line per logged step, flushed), system.jsonl (NVML, from a
sampler thread), checkpoints and the final adapter. Launching it again on the same
directory resumes from the newest complete checkpoint.

It reads as a recipe, top to bottom: setup (model and adapter, data, optimizer, resume) →
train loop → save → cleanup. The parts live beside it: model.py (device, model, lineage),
optim.py (optimizer, schedule), batches.py and objective.py (what a step minimises),
metrics.py (the logged step in flight), checkpoint.py (save and restore), disk.py.

Throughput choices: packed rows with restarting position ids (no padding computed, no
cross-example attention); the LM head and cross-entropy run only on loss-bearing
positions (chat data is mostly prompt, and the vocabulary projection is the largest
activation); metrics are copied to the host asynchronously and read one step late, so
logging never stalls the GPU queue.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.runs.config import run_config_from_json
from core.runs.failures import Failure, classify_exception, disk_full_failure
from core.runs.rundir import (
    EventWriter,
    RunPaths,
    RunStatus,
    atomic_write_json,
    iter_records,
    now,
    process_start_time,
    read_json,
    read_status,
)
from core.training.batches import collate, loss_token_count
from core.training.checkpoint import Checkpointer, Progress, UnsafeCheckpoint
from core.training.data import (
    BatchPlan,
    ChatTokenizer,
    PackedRow,
    pack,
    plan_batches,
    read_chat_jsonl,
    unpacked_rows,
)
from core.training.disk import DiskReserve, is_disk_full
from core.training.metrics import NanLoss, StepMetrics, StepResult
from core.training.model import (
    autocast_for,
    compute_dtype,
    load_model,
    runtime_lineage,
    seed_everything,
    training_device,
)
from core.training.objective import LOSS_CHUNK_TOKENS as LOSS_CHUNK_TOKENS
from core.training.objective import Objective, supervised_objective, token_losses
from core.training.optim import TrainingParts, build_parts
from core.training.status import StatusKeeper


class StopRequested(Exception):
    def __init__(self, signal_name: str, cancelled: bool) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.cancelled = cancelled


@dataclass(frozen=True, slots=True)
class TrainingData:
    train_rows: list[PackedRow]
    val_rows: list[PackedRow]
    plan: BatchPlan
    pad_id: int


class Trainer:
    def __init__(self, paths: RunPaths, objective: Objective = supervised_objective) -> None:
        self.paths = paths
        run = read_json(paths.run_json)
        if run is None:
            raise SystemExit(f"{paths.run_json}: missing or unreadable; not a run directory")
        self.run = run
        self.config = run_config_from_json(run["config"])
        self.objective = objective
        self.device = training_device()
        self.monitoring = os.environ.get("FTOD_TRAIN_MONITORING", "on") != "off"
        self.stop_signal: str | None = None
        previous = read_status(paths)
        self.attempt = 1 + sum(1 for r in iter_records(paths.events) if r.get("type") == "start")
        pid = os.getpid()
        self.status = StatusKeeper(
            paths,
            RunStatus(
                run_id=paths.run_id,
                state="running",
                pid=pid,
                pid_started=process_start_time(pid),
                heartbeat=now(),
                step=previous.step if previous else 0,
                total_steps=previous.total_steps if previous else None,
                started_at=(previous.started_at if previous and previous.started_at else now()),
                message="loading",
            ),
        )
        self.events = EventWriter(paths.events)
        self.checkpoints = Checkpointer(paths, self.config, self._write_event)
        self.reserve = DiskReserve(paths.root / ".disk-reserve")
        self.stage = "data"

    # -- the run ----------------------------------------------------------------------
    def run_to_end(self) -> int:
        self.install_signal_handlers()
        self.status.start()
        recorder = self._start_system_recorder()
        progress = Progress()
        try:
            self.reserve.claim()
            self._train(progress)
            return 0
        except StopRequested as stop:
            self._finish_stopped(stop, progress)
            return 0 if stop.cancelled else 1
        except Exception as error:  # noqa: BLE001 - every failure becomes a run state
            self._finish_failed(error)
            return 1
        finally:
            if recorder is not None:
                with contextlib.suppress(Exception):
                    recorder.stop()
            self.status.stop()
            self.events.close()
            self.reserve.release()

    def _train(self, progress: Progress) -> None:
        config = self.config
        atomic_write_json(self.paths.lineage_json, runtime_lineage(self.device))
        # Read before the model loads, so a refused checkpoint costs nothing.
        self.stage = "resume"
        saved = self.checkpoints.read_latest()

        # -- setup: model and adapter
        self.stage = "model"
        dtype = compute_dtype(config.train.precision, self.device)
        # Seeded before the adapter exists: LoRA's A matrices are drawn at creation.
        seed_everything(config.train.seed)
        model, tokenizer = load_model(config, self.device, dtype)
        self.check_stop()

        # -- setup: data
        self.stage = "data"
        data = self._training_data(tokenizer)

        # -- setup: optimizer, then the checkpoint's state over it
        self.stage = "train"
        parts = build_parts(config, model, self.device, dtype, data.plan.total_steps)
        if saved is not None:
            saved.restore(parts, progress)
        if config.train.torch_compile:
            parts = dataclasses.replace(parts, forward_model=torch.compile(model))
        self._write_event(
            {
                "type": "start",
                "time": now(),
                "step": progress.step,
                "total_steps": data.plan.total_steps,
                "attempt": self.attempt,
                "resumed_from": saved.step if saved is not None else None,
                "train_rows": len(data.train_rows),
                "val_rows": len(data.val_rows),
                "real_tokens": sum(r.real_tokens for r in data.train_rows),
            }
        )
        self.status.update(total_steps=data.plan.total_steps, step=progress.step, message=None)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

        # -- train
        early_stopped = self._train_loop(parts, data, progress, autocast_for(self.device, dtype))

        # -- save
        self.checkpoints.save_adapter(model, progress.best_adapter if early_stopped else None)
        message = "finished"
        if early_stopped:
            message = (
                f"early stopped at step {progress.step}: val loss did not improve for "
                f"{config.train.early_stopping_patience} evals; adapter from step "
                f"{progress.best_step} (best val loss {progress.best_val:.4f})"
            )
        self._end("succeeded", None, message, progress.step)

    def _training_data(self, tokenizer: Any) -> TrainingData:
        config = self.config.train
        chat = ChatTokenizer(tokenizer, config.max_seq_len)
        train_rows, truncated = self._rows(chat, "train.jsonl", tokenizer.pad_token_id)
        val_path = self.paths.data_dir / "val.jsonl"
        val_rows = (
            self._rows(chat, "val.jsonl", tokenizer.pad_token_id)[0] if val_path.exists() else []
        )
        if truncated:
            print(f"{truncated} training examples were cut to max_seq_len", file=sys.stderr)
        plan = plan_batches(
            len(train_rows),
            rows_per_micro=config.batch_size,
            grad_accum=self.config.effective_grad_accum,
            epochs=config.epochs,
            max_steps=config.max_steps,
        )
        return TrainingData(train_rows, val_rows, plan, tokenizer.pad_token_id)

    def _rows(self, chat: ChatTokenizer, name: str, pad_id: int) -> tuple[list[PackedRow], int]:
        rows = read_chat_jsonl(self.paths.data_dir / name)
        examples = chat.tokenize_all(rows)
        truncated = sum(1 for e in examples if e.truncated)
        if self.config.train.packing:
            return pack(examples, self.config.train.max_seq_len, pad_id), truncated
        return unpacked_rows(examples, pad_id), truncated

    # -- the train loop ---------------------------------------------------------------
    def _train_loop(
        self, parts: TrainingParts, data: TrainingData, progress: Progress, autocast: Any
    ) -> bool:
        """Steps to the end of the plan; True when early stopping ended it sooner."""
        config = self.config.train
        total_steps = data.plan.total_steps
        metrics = StepMetrics(
            self.device,
            self._write_event if self.monitoring else None,
            lambda step: self.status.note(step=step),
        )
        parts.model.train()
        while progress.step < total_steps:
            step = progress.step + 1
            result = self._optimizer_step(parts, data, step, autocast)
            progress.step = step
            metrics.count(result.tokens)
            # Read the previous step now that this one is queued behind it.
            metrics.flush()
            at_end = step == total_steps
            if step % config.log_every == 0 or at_end:
                metrics.stage(step, result, data.plan.epoch_at(step))

            stop_early = False
            if data.val_rows and (step % config.eval_every == 0 or at_end):
                metrics.flush()
                stop_early = self._evaluate(parts.model, data, progress, autocast)
                parts.model.train()
                metrics.restart_clock()
            stopping = self.stop_signal is not None
            if stop_early or stopping or (step % config.save_every == 0 and not at_end):
                metrics.flush()
                self.checkpoints.save(parts, progress)
                metrics.restart_clock()
            if stop_early:
                return True
            if stopping:
                self.check_stop()
        metrics.flush()
        return False

    def _optimizer_step(
        self, parts: TrainingParts, data: TrainingData, step: int, autocast: Any
    ) -> StepResult:
        """Forward and backward over the step's micro-batches, then one optimizer step."""
        config = self.config.train
        micro_batches = data.plan.micro_batches_of_step(step, len(data.train_rows), config.seed)
        step_rows = [[data.train_rows[i] for i in indices] for indices in micro_batches]
        loss_tokens = sum(loss_token_count(rows) for rows in step_rows)
        real_tokens = sum(row.real_tokens for rows in step_rows for row in rows)
        loss_sum = torch.zeros((), device=self.device)
        metric_sums: dict[str, torch.Tensor] = {}
        for rows in step_rows:
            batch = collate(rows, self.device, data.pad_id)
            with autocast:
                output = self.objective(parts.forward_model, batch)
            scaled: Any = parts.scaler.scale(output.loss_sum / max(1, loss_tokens))
            scaled.backward()
            loss_sum += output.loss_sum.detach()
            for name, value in output.metrics.items():
                earlier = metric_sums.get(name)
                metric_sums[name] = value.detach() if earlier is None else earlier + value.detach()
        parts.scaler.unscale_(parts.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            parts.trainable, config.max_grad_norm if config.max_grad_norm > 0 else float("inf")
        )
        parts.scaler.step(parts.optimizer)
        parts.scaler.update()
        lr = float(parts.scheduler.get_last_lr()[0])
        parts.scheduler.step()
        parts.optimizer.zero_grad(set_to_none=True)
        return StepResult(loss_sum, grad_norm, metric_sums, real_tokens, loss_tokens, lr)

    @torch.no_grad()
    def _evaluate(self, model: Any, data: TrainingData, progress: Progress, autocast: Any) -> bool:
        """Logs val loss and token accuracy; True when early stopping's patience ran out."""
        model.eval()
        total = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        count = 0
        size = self.config.train.batch_size
        for start in range(0, len(data.val_rows), size):
            rows = data.val_rows[start : start + size]
            count += loss_token_count(rows)
            with autocast:
                loss_sum, right = token_losses(
                    model, collate(rows, self.device, data.pad_id), with_accuracy=True
                )
            total += loss_sum
            if right is not None:
                correct += right
        val_loss = float(total) / max(1, count)
        accuracy = float(correct) / max(1, count)
        self._write_event(
            {
                "type": "eval",
                "time": now(),
                "step": progress.step,
                "val_loss": val_loss,
                "val_token_accuracy": accuracy,
                "val_tokens": count,
            }
        )
        patience = self.config.train.early_stopping_patience
        if math.isfinite(val_loss) and (progress.best_val is None or val_loss < progress.best_val):
            progress.best_val = val_loss
            progress.best_step = progress.step
            progress.evals_without_improvement = 0
            if patience is not None:
                from peft import get_peft_model_state_dict

                progress.best_adapter = {
                    k: v.detach().to("cpu", copy=True)
                    for k, v in get_peft_model_state_dict(model).items()
                }
        else:
            progress.evals_without_improvement += 1
        return patience is not None and progress.evals_without_improvement >= patience

    # -- signals and monitoring -------------------------------------------------------
    def install_signal_handlers(self) -> None:
        def request_stop(signum: int, _frame: Any) -> None:
            self.stop_signal = signal.Signals(signum).name

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        # Detached in its own session; a closed terminal must not stop training.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def check_stop(self) -> None:
        if self.stop_signal is not None:
            raise StopRequested(self.stop_signal, self.paths.cancel_request.exists())

    def _start_system_recorder(self) -> Any:
        if not self.monitoring:
            return None
        try:
            from core.gpu import SystemRecorder

            recorder = SystemRecorder(self.paths.system, os.getpid())
            recorder.start()
            return recorder
        except Exception:  # noqa: BLE001 - monitoring must never stop training
            traceback.print_exc()
            return None

    # -- cleanup: how a run ends ------------------------------------------------------
    def _finish_stopped(self, stop: StopRequested, progress: Progress) -> None:
        if stop.cancelled:
            message = f"cancelled at step {progress.step}; checkpoint kept, resume continues"
            self._end("cancelled", None, message, progress.step)
        else:
            message = (
                f"stopped by {stop.signal_name} from outside ftod at step {progress.step}; "
                "checkpoint kept, `ftod runs resume` continues"
            )
            self._end("failed", "killed", message, progress.step)

    def _finish_failed(self, error: BaseException) -> None:
        if is_disk_full(error):
            # Room first: the traceback, the end event and status.json all need a little.
            self.status.stop()
            self.reserve.release()
            self.checkpoints.remove_partial_writes()
            for tmp in self.paths.root.glob(f".{self.paths.status_json.name}.{os.getpid()}.*.tmp"):
                tmp.unlink(missing_ok=True)
            self._reopen_events()
        with contextlib.suppress(OSError):
            traceback.print_exc()
        self._end("failed", *self._failure(error), self.status.status.step)

    def _failure(self, error: BaseException) -> tuple[str, str]:
        if is_disk_full(error):
            failure = disk_full_failure(self.paths.root, self.paths.run_id)
        elif isinstance(error, NanLoss):
            failure = Failure(
                "nan_loss",
                f"loss became {error.loss} at step {error.step}; lower the learning rate "
                "or check the data around that step",
            )
        elif isinstance(error, UnsafeCheckpoint):
            failure = Failure("error", str(error))
        else:
            peak = total = None
            if self.device.type == "cuda":
                peak = torch.cuda.max_memory_allocated()
                total = torch.cuda.get_device_properties(0).total_memory
            failure = classify_exception(
                error,
                stage=self.stage,
                peak_bytes=peak,
                total_bytes=total,
                gradient_checkpointing=self.config.train.gradient_checkpointing,
                qlora=self.config.qlora.enabled,
            )
        return failure.reason, failure.message

    def _end(self, state: str, reason: str | None, message: str, step: int) -> None:
        # Its room goes to the last writes; a finished run keeps no reserve.
        self.reserve.release()
        # status.json is what readers trust; a lost end event must not keep it from them.
        with contextlib.suppress(OSError):
            self._write_event(
                {
                    "type": "end",
                    "time": now(),
                    "step": step,
                    "state": state,
                    "reason": reason,
                    "message": message,
                }
            )
        self.status.update(state=state, reason=reason, message=message, step=step, ended_at=now())

    def _write_event(self, record: dict[str, Any]) -> None:
        self.events.write(record)

    def _reopen_events(self) -> None:
        """A write that hit a full disk leaves its line in the old handle's buffer; a new
        writer ends any torn line, so the end event is a line of its own."""
        self.events.close()
        with contextlib.suppress(OSError):
            self.events = EventWriter(self.paths.events)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m core.train RUN_DIR", file=sys.stderr)
        return 2
    paths = RunPaths(Path(args[0]).resolve())
    trainer = Trainer(paths)
    return trainer.run_to_end()
