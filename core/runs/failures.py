"""Turning a trainer's exception into a run state a person can act on.

Kept free of torch so it can be tested with look-alike exceptions: classification goes by
class name and message, which is also how CUDA, cuBLAS and bitsandbytes report OOMs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3

_OOM_MARKERS = (
    "out of memory",
    "cuda_error_out_of_memory",
    "cublas_status_alloc_failed",
    "cudnn_status_alloc_failed",
    "failed to allocate",
    "mps backend out of memory",
)
_MODEL_MARKERS = (
    "safetensors",
    "state_dict",
    "size mismatch",
    "does not appear to have a file named",
    "unrecognized configuration class",
    "target modules",
    "bitsandbytes",
)


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    message: str


def oom_advice(
    peak_bytes: int | None, total_bytes: int | None, *, gradient_checkpointing: bool, qlora: bool
) -> str:
    parts: list[str] = []
    if peak_bytes is not None:
        peak = f"peak allocated {peak_bytes / GIB:.2f} GiB"
        if total_bytes:
            peak += f" of {total_bytes / GIB:.2f} GiB"
        parts.append(peak)
    tips = ["fewer tokens per step (smaller batch_size or max_seq_len, more grad_accum)"]
    if not gradient_checkpointing:
        tips.append("gradient_checkpointing: true")
    if not qlora:
        tips.append("QLoRA (qlora: true) to hold the base weights in 4 bits")
    return "; ".join([*parts, "try: " + ", ".join(tips)])


def classify_exception(
    error: BaseException,
    *,
    stage: str,
    peak_bytes: int | None = None,
    total_bytes: int | None = None,
    gradient_checkpointing: bool = False,
    qlora: bool = False,
) -> Failure:
    """`stage` is where it happened: "data", "model" or "train"."""
    name = type(error).__name__
    text = f"{name}: {error}"
    lowered = text.lower()
    if name == "OutOfMemoryError" or any(marker in lowered for marker in _OOM_MARKERS):
        advice = oom_advice(
            peak_bytes, total_bytes, gradient_checkpointing=gradient_checkpointing, qlora=qlora
        )
        return Failure("oom", f"GPU out of memory during {stage}: {advice}")
    if name == "DataError" or stage == "data":
        return Failure("data_error", f"the training data cannot be used: {error}")
    if stage == "model" or any(marker in lowered for marker in _MODEL_MARKERS):
        return Failure("model_error", f"the model could not be prepared: {text}")
    return Failure("error", f"{text} (full traceback in trainer.log)")


def disk_full_failure(folder: Path, run_id: str) -> Failure:
    """A write under `folder` found no space; reason `error`, since the run states' reasons
    are a contract and this one tells the user all they need in the message."""
    return Failure(
        "error",
        f"the disk is full: free space under {folder} and resume (`ftod runs resume {run_id}`)",
    )
