"""What the formats share: metric values read leniently, and rows turned into events."""

from __future__ import annotations

import math
import re
from typing import Any

Number = int | float

TRAIN, EVAL = 0, 1

# ---------------------------------------------------------------------------------------------
# Values


NUMERIC_TEXT = re.compile(
    r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE
)


def as_number(value: Any) -> Number | None:
    """A metric value as a number: numeric strings too, NaN and infinities kept (they are data)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        # float() alone would also take "1_000" and surrounding junk we do not want to bless.
        if NUMERIC_TEXT.fullmatch(text):
            return float(text)
    return None


def as_float(value: Any) -> float | None:
    number = as_number(value)
    return None if number is None else float(number)


def as_int(value: Any) -> int | None:
    number = as_number(value)
    if number is None or not math.isfinite(number) or number != int(number):
        return None
    return int(number)


def numeric_values(row: dict[Any, Any]) -> dict[str, Number]:
    return {
        key: number
        for key, value in row.items()
        if isinstance(key, str) and (number := as_number(value)) is not None
    }


_DURATION = re.compile(r"(?:(\d+)\s+days?,\s*)?(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)")


def duration_seconds(value: Any) -> float | None:
    """LLaMA-Factory's "H:MM:SS" / "N days, H:MM:SS" (str(timedelta)) as seconds."""
    if not isinstance(value, str):
        return None
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        return None
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


# ---------------------------------------------------------------------------------------------
# Rows to events


def is_eval_key(key: str) -> bool:
    return key.startswith(("eval_", "eval/", "predict_"))


# Keys that describe where a row is, not what was measured: a row holding only these is not a
# train row (LLaMA-Factory's closing line, an eval row's bookkeeping).
_CONTEXT = frozenset(
    {
        "step",
        "global_step",
        "epoch",
        "current_steps",
        "total_steps",
        "percentage",
        "elapsed_time",
        "remaining_time",
        "throughput",
        "total_tokens",
        "num_input_tokens_seen",
        "num_tokens",
        "total_flos",
    }
)
_NOT_EXTRA = frozenset({"step", "global_step", "current_steps", "total_steps", "epoch"})
_TOKEN_KEYS = ("num_input_tokens_seen", "num_tokens", "total_tokens", "elapsed_tokens")


def has_train_metrics(numbers: dict[str, Number]) -> bool:
    return any(not is_eval_key(key) and key not in _CONTEXT for key in numbers)


def has_eval_metrics(numbers: dict[str, Number]) -> bool:
    return any(is_eval_key(key) for key in numbers)


def take(values: dict[str, Number], names: tuple[str, ...]) -> Number | None:
    for name in names:
        if name in values:
            return values.pop(name)
    return None


def train_event(numbers: dict[str, Number], step: int, time: float | None) -> dict[str, Any]:
    values = {k: v for k, v in numbers.items() if not is_eval_key(k) and k not in _NOT_EXTRA}
    loss = take(values, ("loss", "train_loss", "training_loss"))
    lr = take(values, ("learning_rate", "lr"))
    grad_norm = take(values, ("grad_norm",))
    tokens = as_int(take(values, _TOKEN_KEYS))
    tokens_per_s = take(values, ("throughput", "tokens_per_second"))
    if tokens == 0 and step > 0:
        tokens = None
        if tokens_per_s == 0:
            tokens_per_s = None
    return {
        "type": "train",
        "time": time,
        "step": step,
        "epoch": as_float(numbers.get("epoch")),
        "loss": as_float(loss),
        "lr": as_float(lr),
        "grad_norm": as_float(grad_norm),
        "tokens": tokens,
        "tokens_per_s": as_float(tokens_per_s),
        "mem_allocated": None,
        "mem_reserved": None,
        "mem_peak": None,
        "extra": values,
    }


def eval_event(
    step: int,
    time: float | None,
    val_loss: Number | None,
    accuracy: Number | None,
    extra: dict[str, Number],
) -> dict[str, Any]:
    return {
        "type": "eval",
        "time": time,
        "step": step,
        "val_loss": as_float(val_loss),
        "val_token_accuracy": as_float(accuracy),
        "extra": extra,
    }


def trainer_eval_event(numbers: dict[str, Number], step: int, time: float | None) -> dict[str, Any]:
    values = {k: v for k, v in numbers.items() if is_eval_key(k)}
    val_loss = take(values, ("eval_loss", "eval/loss"))
    accuracy = take(values, ("eval_mean_token_accuracy", "eval/mean_token_accuracy"))
    if "epoch" in numbers:
        values["epoch"] = numbers["epoch"]
    return eval_event(step, time, val_loss, accuracy, values)


class Events:
    """Events keyed by (step, kind): a step logged twice keeps its last row."""

    def __init__(self) -> None:
        self._events: dict[tuple[int, int], dict[str, Any]] = {}
        self.duplicates = 0

    def add(self, kind: int, event: dict[str, Any]) -> None:
        key = (int(event["step"]), kind)
        if key in self._events:
            self.duplicates += 1
        self._events[key] = event

    def add_row(self, numbers: dict[str, Number], step: int, time: float | None = None) -> bool:
        added = False
        if has_train_metrics(numbers):
            self.add(TRAIN, train_event(numbers, step, time))
            added = True
        if has_eval_metrics(numbers):
            self.add(EVAL, trainer_eval_event(numbers, step, time))
            added = True
        return added

    def sorted(self) -> list[dict[str, Any]]:
        return [self._events[key] for key in sorted(self._events)]

    def warn_duplicates(self, warnings: list[str]) -> None:
        if self.duplicates:
            warnings.append(
                f"{plural(self.duplicates, 'row')} repeated a step already logged "
                "(a resumed run?); the last row for each step was kept"
            )


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def counted(count: int, noun: str, rest: str) -> str:
    """E.g. "3 lines were not JSON objects and were skipped", with "was" for one."""
    return f"{plural(count, noun)} " + rest.format(were="was" if count == 1 else "were")


def is_summary(numbers: dict[str, Number]) -> bool:
    return "train_runtime" in numbers
