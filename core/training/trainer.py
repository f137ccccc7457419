"""The LoRA/QLoRA trainer: `python -m core.train RUN_DIR`, in its own session.

It reads only its run directory and writes only there (never DuckDB): status.json
(atomically), events.jsonl (a line per logged step, flushed), system.jsonl (NVML, from a
sampler thread), checkpoints and the final adapter. Launching it again on the same
directory resumes from the newest complete checkpoint.

Throughput choices: packed rows with restarting position ids (no padding computed, no
cross-example attention); the LM head and cross-entropy run only on loss-bearing
positions (chat data is mostly prompt, and the vocabulary projection is the largest
activation); metrics are copied to the host asynchronously and read one step late, so
logging never stalls the GPU queue.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import random
import shutil
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.runs.config import ALL_LINEAR, RunConfig, run_config_from_json
from core.runs.failures import Failure, classify_exception
from core.runs.rundir import (
    EventWriter,
    RunPaths,
    RunStatus,
    atomic_write_json,
    hostname,
    iter_records,
    now,
    process_start_time,
    read_json,
    read_status,
    write_status,
)
from core.training.data import (
    IGNORE_INDEX,
    BatchPlan,
    ChatTokenizer,
    PackedRow,
    pack,
    plan_batches,
    read_chat_jsonl,
    unpacked_rows,
)

HEARTBEAT_SECONDS = 2.0
LOSS_CHUNK_TOKENS = 8192


class StopRequested(Exception):
    def __init__(self, signal_name: str, cancelled: bool) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.cancelled = cancelled


class StatusKeeper:
    """The one writer of status.json, shared by the loop and the heartbeat thread."""

    def __init__(self, paths: RunPaths, status: RunStatus) -> None:
        self._paths = paths
        self._status = status
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="ftod-heartbeat", daemon=True)
        write_status(paths, status)

    @property
    def status(self) -> RunStatus:
        return self._status

    def update(self, **changes: Any) -> None:
        with self._lock:
            self._status = self._status.with_changes(heartbeat=now(), **changes)
            write_status(self._paths, self._status)

    def note(self, **changes: Any) -> None:
        """Change fields without writing: the heartbeat writes them within two seconds.

        Used for the step count, so the training thread never waits on an fsync per step.
        """
        with self._lock:
            self._status = self._status.with_changes(**changes)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(OSError):
                self.update()


@dataclass
class PendingMetrics:
    """Step statistics still on the device; read one step later so the GPU keeps going."""

    step: int
    values: torch.Tensor
    ready: Any
    tokens: int
    loss_tokens: int
    lr: float
    epoch: float
    staged_at: float = 0.0
    window_tokens: int = 0
    """Tokens of every step since the previous logged one, for tokens/s."""


@dataclass
class LoopState:
    step: int = 0
    best_val: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    best_adapter: dict[str, torch.Tensor] | None = None
    last_readout: float = field(default_factory=time.perf_counter)
    tokens_unreported: int = 0
    last_event: Any = None

    def restart_clock(self) -> None:
        """After an eval or a checkpoint, so their time is not counted as a step's."""
        self.last_event = None
        self.last_readout = time.perf_counter()


def _device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def runtime_lineage(device: torch.device) -> dict[str, Any]:
    import peft
    import transformers

    lineage: dict[str, Any] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "host": hostname(),
        "device": device.type,
        "gpu_name": None,
        "gpu_driver": None,
    }
    if device.type == "cuda":
        lineage["gpu_name"] = torch.cuda.get_device_name(0)
        with contextlib.suppress(Exception):
            import pynvml

            pynvml.nvmlInit()
            driver = pynvml.nvmlSystemGetDriverVersion()
            lineage["gpu_driver"] = driver.decode() if isinstance(driver, bytes) else driver
    return lineage


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_model(config: RunConfig, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = config.base_model
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    tokenizer = AutoTokenizer.from_pretrained(
        source, revision=config.revision, local_files_only=offline
    )
    kwargs: dict[str, Any] = {"revision": config.revision, "local_files_only": offline}
    if config.qlora.enabled:
        if device.type != "cuda":
            raise RuntimeError("QLoRA needs a CUDA GPU (bitsandbytes 4-bit); none is visible")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True,
            bnb_4bit_quant_type=config.qlora.quant_type,
            bnb_4bit_use_double_quant=config.qlora.double_quant,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": 0}
    kwargs["dtype"] = dtype
    with contextlib.suppress(Exception):
        import importlib.util

        if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
            kwargs["attn_implementation"] = "flash_attention_2"
    kwargs.setdefault("attn_implementation", "sdpa")
    model: Any = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if not config.qlora.enabled:
        model.to(device)
    if config.qlora.enabled:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
            model, use_gradient_checkpointing=config.train.gradient_checkpointing
        )
    elif config.train.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    target: Any = config.lora.target_modules
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=ALL_LINEAR if target == ALL_LINEAR else list(target),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return peft_model, tokenizer


def _causal_lm(peft_model: Any) -> Any:
    return peft_model.base_model.model


def token_losses(
    peft_model: Any, batch: dict[str, torch.Tensor], *, with_accuracy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Summed cross-entropy over loss-bearing tokens (and the count of correct argmaxes).

    The LM head runs only on positions whose next token is trained on, in chunks, so the
    (tokens × vocabulary) logits never exist for the prompt part.
    """
    causal_lm = _causal_lm(peft_model)
    decoder = getattr(causal_lm, causal_lm.base_model_prefix)
    hidden = decoder(
        input_ids=batch["input_ids"],
        position_ids=batch["position_ids"],
        attention_mask=batch.get("attention_mask"),
        use_cache=False,
    ).last_hidden_state
    labels = batch["labels"][:, 1:]
    hidden = hidden[:, :-1]
    selected = labels != IGNORE_INDEX
    flat_hidden = hidden[selected]
    flat_labels = labels[selected]
    head = causal_lm.get_output_embeddings()
    softcap = getattr(causal_lm.config, "final_logit_softcapping", None)
    total = flat_hidden.new_zeros((), dtype=torch.float32)
    correct = flat_hidden.new_zeros((), dtype=torch.float32) if with_accuracy else None
    for start in range(0, flat_hidden.shape[0], LOSS_CHUNK_TOKENS):
        logits = head(flat_hidden[start : start + LOSS_CHUNK_TOKENS]).float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        target = flat_labels[start : start + LOSS_CHUNK_TOKENS]
        total = total + torch.nn.functional.cross_entropy(logits, target, reduction="sum")
        if correct is not None:
            correct = correct + (logits.argmax(-1) == target).sum().float()
    return total, correct


def collate(rows: list[PackedRow], device: torch.device, pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(row.input_ids) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    ragged = False
    for index, row in enumerate(rows):
        length = len(row.input_ids)
        ragged = ragged or length != width
        ids[index, :length] = torch.tensor(row.input_ids)
        labels[index, :length] = torch.tensor(row.labels)
        positions[index, :length] = torch.tensor(row.position_ids)
    batch = {"input_ids": ids, "labels": labels, "position_ids": positions}
    if ragged:
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            mask[index, : len(row.input_ids)] = 1
        batch["attention_mask"] = mask
    pin = device.type == "cuda"
    return {
        key: (value.pin_memory() if pin else value).to(device, non_blocking=True)
        for key, value in batch.items()
    }


def lr_lambda(config: RunConfig, total_steps: int) -> Any:
    warmup = config.train.warmup
    warmup_steps = int(warmup * total_steps) if warmup < 1 else int(warmup)
    scheduler = config.train.scheduler

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if scheduler == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        progress = min(1.0, max(0.0, progress))
        if scheduler == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class Trainer:
    def __init__(self, paths: RunPaths) -> None:
        self.paths = paths
        run = read_json(paths.run_json)
        if run is None:
            raise SystemExit(f"{paths.run_json}: missing or unreadable; not a run directory")
        self.run = run
        self.config = run_config_from_json(run["config"])
        self.device = _device()
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
        self.stage = "data"

    # -- signals ----------------------------------------------------------------------
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

    # -- the run ----------------------------------------------------------------------
    def run_to_end(self) -> int:
        self.install_signal_handlers()
        self.status.start()
        recorder = self._start_system_recorder()
        state = LoopState()
        try:
            self._train(state)
            return 0
        except StopRequested as stop:
            self._finish_stopped(stop, state)
            return 0 if stop.cancelled else 1
        except Exception as error:  # noqa: BLE001 - every failure becomes a run state
            traceback.print_exc()
            self._finish_failed(error)
            return 1
        finally:
            if recorder is not None:
                with contextlib.suppress(Exception):
                    recorder.stop()
            self.status.stop()
            self.events.close()

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

    def _train(self, state: LoopState) -> None:
        config = self.config
        atomic_write_json(self.paths.lineage_json, runtime_lineage(self.device))
        self.stage = "model"
        dtype = _compute_dtype(config.train.precision, self.device)
        # Seeded before the adapter exists: LoRA's A matrices are drawn at creation.
        seed_everything(config.train.seed)
        model, tokenizer = load_model(config, self.device, dtype)
        self.check_stop()
        self.stage = "data"
        chat = ChatTokenizer(tokenizer, config.train.max_seq_len)
        train_rows, truncated = self._rows(chat, "train.jsonl", tokenizer.pad_token_id)
        val_path = self.paths.data_dir / "val.jsonl"
        val_rows = (
            self._rows(chat, "val.jsonl", tokenizer.pad_token_id)[0] if val_path.exists() else []
        )
        if truncated:
            print(f"{truncated} training examples were cut to max_seq_len", file=sys.stderr)
        plan = plan_batches(
            len(train_rows),
            rows_per_micro=config.train.batch_size,
            grad_accum=config.effective_grad_accum,
            epochs=config.train.epochs,
            max_steps=config.train.max_steps,
        )
        self.stage = "train"
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            trainable,
            lr=config.train.lr,
            weight_decay=config.train.weight_decay,
            fused=self.device.type == "cuda",
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(config, plan.total_steps)
        )
        scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        resumed_from = self._resume(model, optimizer, scheduler, scaler, state)
        forward_model = model
        if config.train.torch_compile:
            forward_model = torch.compile(model)
        self.events.write(
            {
                "type": "start",
                "time": now(),
                "step": state.step,
                "total_steps": plan.total_steps,
                "attempt": self.attempt,
                "resumed_from": resumed_from,
                "train_rows": len(train_rows),
                "val_rows": len(val_rows),
                "real_tokens": sum(r.real_tokens for r in train_rows),
            }
        )
        self.status.update(total_steps=plan.total_steps, step=state.step, message=None)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        self._loop(
            forward_model,
            model,
            optimizer,
            scheduler,
            scaler,
            plan,
            train_rows,
            val_rows,
            tokenizer.pad_token_id,
            dtype,
            state,
        )

    def _rows(self, chat: ChatTokenizer, name: str, pad_id: int) -> tuple[list[PackedRow], int]:
        rows = read_chat_jsonl(self.paths.data_dir / name)
        examples = chat.tokenize_all(rows)
        truncated = sum(1 for e in examples if e.truncated)
        if self.config.train.packing:
            return pack(examples, self.config.train.max_seq_len, pad_id), truncated
        return unpacked_rows(examples, pad_id), truncated

    def _resume(
        self, model: Any, optimizer: Any, scheduler: Any, scaler: Any, state: LoopState
    ) -> int | None:
        latest = self.paths.latest_checkpoint()
        if latest is None:
            return None
        from peft import set_peft_model_state_dict

        step, folder = latest
        saved = torch.load(folder / "trainer_state.pt", map_location="cpu", weights_only=False)
        set_peft_model_state_dict(model, saved["adapter"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        restore_rng_state(saved["rng"])
        state.step = step
        state.best_val = saved.get("best_val")
        state.best_step = saved.get("best_step")
        state.evals_without_improvement = saved.get("evals_without_improvement", 0)
        state.best_adapter = saved.get("best_adapter")
        print(f"resumed from {folder}", file=sys.stderr)
        return step

    def _loop(
        self,
        forward_model: Any,
        model: Any,
        optimizer: Any,
        scheduler: Any,
        scaler: Any,
        plan: BatchPlan,
        train_rows: list[PackedRow],
        val_rows: list[PackedRow],
        pad_id: int,
        dtype: torch.dtype,
        state: LoopState,
    ) -> None:
        config = self.config.train
        autocast = self._autocast(dtype)
        pending: PendingMetrics | None = None
        trainable = [p for p in model.parameters() if p.requires_grad]
        model.train()
        state.last_readout = time.perf_counter()
        while state.step < plan.total_steps:
            step = state.step + 1
            micro_batches = plan.micro_batches_of_step(step, len(train_rows), config.seed)
            step_rows = [[train_rows[i] for i in indices] for indices in micro_batches]
            loss_tokens = sum(
                sum(1 for label in row.labels[1:] if label != IGNORE_INDEX)
                for rows in step_rows
                for row in rows
            )
            real_tokens = sum(row.real_tokens for rows in step_rows for row in rows)
            loss_sum = torch.zeros((), device=self.device)
            for rows in step_rows:
                batch = collate(rows, self.device, pad_id)
                with autocast:
                    micro_loss, _ = token_losses(forward_model, batch)
                scaler.scale(micro_loss / max(1, loss_tokens)).backward()
                loss_sum += micro_loss.detach()
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(
                trainable, config.max_grad_norm if config.max_grad_norm > 0 else float("inf")
            )
            scaler.step(optimizer)
            scaler.update()
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step = step
            state.tokens_unreported += real_tokens
            # Read the previous step now that this one is queued behind it.
            if pending is not None:
                self._emit(pending, state)
            pending = None
            if step % config.log_every == 0 or step == plan.total_steps:
                pending = self._stage_metrics(
                    step, loss_sum, grad_norm, real_tokens, loss_tokens, lr, plan.epoch_at(step)
                )
                pending.window_tokens = state.tokens_unreported
                state.tokens_unreported = 0
            at_end = step == plan.total_steps
            if val_rows and (step % config.eval_every == 0 or at_end):
                if pending is not None:
                    self._emit(pending, state)
                    pending = None
                stop_early = self._evaluate(model, val_rows, pad_id, autocast, state)
                model.train()
                state.restart_clock()
                if stop_early:
                    self._save_checkpoint(model, optimizer, scheduler, scaler, state)
                    self._finish_succeeded(model, state, early_stopped=True)
                    return
            if step % config.save_every == 0 and not at_end:
                if pending is not None:
                    self._emit(pending, state)
                    pending = None
                self._save_checkpoint(model, optimizer, scheduler, scaler, state)
                state.restart_clock()
            if self.stop_signal is not None:
                if pending is not None:
                    self._emit(pending, state)
                    pending = None
                self._save_checkpoint(model, optimizer, scheduler, scaler, state)
                self.check_stop()
        if pending is not None:
            self._emit(pending, state)
        self._finish_succeeded(model, state, early_stopped=False)

    def _autocast(self, dtype: torch.dtype) -> Any:
        if self.device.type == "cuda" and dtype != torch.float32:
            return torch.autocast("cuda", dtype=dtype)
        return contextlib.nullcontext()

    def _stage_metrics(
        self,
        step: int,
        loss_sum: torch.Tensor,
        grad_norm: torch.Tensor,
        tokens: int,
        loss_tokens: int,
        lr: float,
        epoch: float,
    ) -> PendingMetrics:
        values = torch.stack([loss_sum.float(), grad_norm.float().to(loss_sum.device)])
        ready: Any = None
        if values.is_cuda:
            host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            host.copy_(values, non_blocking=True)
            ready = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            ready.record()
            values = host
        pending = PendingMetrics(step, values, ready, tokens, loss_tokens, lr, epoch)
        pending.staged_at = time.perf_counter()
        return pending

    def _emit(self, pending: PendingMetrics, state: LoopState) -> None:
        if pending.ready is not None:
            pending.ready.synchronize()
        loss_sum, grad_norm = (float(v) for v in pending.values.tolist())
        loss = loss_sum / max(1, pending.loss_tokens)
        # Step time is measured between step ends: on the GPU by its own events (the host
        # runs ahead of it), on the CPU by the host clock when the step returned.
        if pending.ready is not None and state.last_event is not None:
            elapsed = state.last_event.elapsed_time(pending.ready) / 1000.0
        elif pending.ready is not None:
            elapsed = time.perf_counter() - state.last_readout
        else:
            elapsed = pending.staged_at - state.last_readout
        state.last_event = pending.ready
        state.last_readout = pending.staged_at if pending.ready is None else time.perf_counter()
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
        if self.device.type == "cuda":
            record["mem_allocated"] = torch.cuda.memory_allocated()
            record["mem_reserved"] = torch.cuda.memory_reserved()
            record["mem_peak"] = torch.cuda.max_memory_allocated()
        if self.monitoring:
            self.events.write(record)
        self.status.note(step=pending.step)
        if not math.isfinite(loss):
            raise NanLoss(pending.step, loss)

    @torch.no_grad()
    def _evaluate(
        self,
        model: Any,
        val_rows: list[PackedRow],
        pad_id: int,
        autocast: Any,
        state: LoopState,
    ) -> bool:
        model.eval()
        total = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        count = 0
        size = self.config.train.batch_size
        for start in range(0, len(val_rows), size):
            rows = val_rows[start : start + size]
            count += sum(
                sum(1 for label in row.labels[1:] if label != IGNORE_INDEX) for row in rows
            )
            with autocast:
                loss_sum, right = token_losses(
                    model, collate(rows, self.device, pad_id), with_accuracy=True
                )
            total += loss_sum
            if right is not None:
                correct += right
        val_loss = float(total) / max(1, count)
        accuracy = float(correct) / max(1, count)
        self.events.write(
            {
                "type": "eval",
                "time": now(),
                "step": state.step,
                "val_loss": val_loss,
                "val_token_accuracy": accuracy,
                "val_tokens": count,
            }
        )
        patience = self.config.train.early_stopping_patience
        if math.isfinite(val_loss) and (state.best_val is None or val_loss < state.best_val):
            state.best_val = val_loss
            state.best_step = state.step
            state.evals_without_improvement = 0
            if patience is not None:
                from peft import get_peft_model_state_dict

                state.best_adapter = {
                    k: v.detach().to("cpu", copy=True)
                    for k, v in get_peft_model_state_dict(model).items()
                }
        else:
            state.evals_without_improvement += 1
        return patience is not None and state.evals_without_improvement >= patience

    def _save_checkpoint(
        self, model: Any, optimizer: Any, scheduler: Any, scaler: Any, state: LoopState
    ) -> None:
        from peft import get_peft_model_state_dict

        final = self.paths.checkpoint(state.step)
        if (final / "trainer_state.pt").exists():
            return
        tmp = self.paths.checkpoints / f".step-{state.step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model.save_pretrained(str(tmp / "adapter"))
        torch.save(
            {
                "step": state.step,
                "adapter": get_peft_model_state_dict(model),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "rng": rng_state(),
                # The data order is a function of (seed, epoch); the step fixes the position.
                "data_position": {
                    "step": state.step,
                    "seed": self.config.train.seed,
                    "micro_batches_done": state.step * self.config.effective_grad_accum,
                },
                "best_val": state.best_val,
                "best_step": state.best_step,
                "evals_without_improvement": state.evals_without_improvement,
                "best_adapter": state.best_adapter,
            },
            tmp / "trainer_state.pt",
        )
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        self.events.write(
            {"type": "checkpoint", "time": now(), "step": state.step, "path": str(final)}
        )
        self._prune_checkpoints()

    def _prune_checkpoints(self) -> None:
        keep = self.config.train.keep_checkpoints
        complete = sorted(
            (int(p.name.removeprefix("step-")), p)
            for p in self.paths.checkpoints.glob("step-*")
            if p.name.removeprefix("step-").isdigit()
        )
        for _step, folder in complete[:-keep]:
            shutil.rmtree(folder, ignore_errors=True)

    def _write_adapter(self, model: Any, state: LoopState, early_stopped: bool) -> None:
        tmp = self.paths.root / ".adapter.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if early_stopped and state.best_adapter is not None:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(model, state.best_adapter)
        model.save_pretrained(str(tmp))
        shutil.rmtree(self.paths.adapter, ignore_errors=True)
        os.replace(tmp, self.paths.adapter)

    def _finish_succeeded(self, model: Any, state: LoopState, *, early_stopped: bool) -> None:
        self._write_adapter(model, state, early_stopped)
        message = "finished"
        if early_stopped:
            message = (
                f"early stopped at step {state.step}: val loss did not improve for "
                f"{self.config.train.early_stopping_patience} evals; adapter from step "
                f"{state.best_step} (best val loss {state.best_val:.4f})"
            )
        self._end("succeeded", None, message, state.step)

    def _finish_stopped(self, stop: StopRequested, state: LoopState) -> None:
        if stop.cancelled:
            message = f"cancelled at step {state.step}; checkpoint kept, resume continues"
            self._end("cancelled", None, message, state.step)
        else:
            message = (
                f"stopped by {stop.signal_name} from outside ftod at step {state.step}; "
                "checkpoint kept, `ftod runs resume` continues"
            )
            self._end("failed", "killed", message, state.step)

    def _finish_failed(self, error: BaseException) -> None:
        if isinstance(error, NanLoss):
            failure = Failure(
                "nan_loss",
                f"loss became {error.loss} at step {error.step}; lower the learning rate "
                "or check the data around that step",
            )
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
        step = self.status.status.step
        self._end("failed", failure.reason, failure.message, step)

    def _end(self, state: str, reason: str | None, message: str, step: int) -> None:
        self.events.write(
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


class NanLoss(Exception):
    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"loss {loss} at step {step}")
        self.step = step
        self.loss = loss


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m core.train RUN_DIR", file=sys.stderr)
        return 2
    paths = RunPaths(Path(args[0]).resolve())
    trainer = Trainer(paths)
    return trainer.run_to_end()
