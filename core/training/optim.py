"""The optimizer, the learning-rate schedule and the loss scaler of a run."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from core.runs.config import RunConfig


@dataclass(frozen=True, slots=True)
class TrainingParts:
    """Everything a step changes and a checkpoint must hold, built once per process."""

    model: Any
    forward_model: Any
    """The model the objective calls: `model`, or its torch.compile wrapper."""
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    trainable: list[torch.nn.Parameter]


def build_parts(
    config: RunConfig, model: Any, device: torch.device, dtype: torch.dtype, total_steps: int
) -> TrainingParts:
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable,
        lr=config.train.lr,
        weight_decay=config.train.weight_decay,
        fused=device.type == "cuda",
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, total_steps))
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    return TrainingParts(model, model, optimizer, scheduler, scaler, trainable)


def lr_lambda(config: RunConfig, total_steps: int) -> Callable[[int], float]:
    """The factor on the peak lr before optimizer step `step` (0-based): a linear warmup
    (`warmup` below 1 is a share of the steps, from 1 a count), then constant, linear or
    cosine decay to zero at `total_steps`."""
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
