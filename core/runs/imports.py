"""Importers for training logs written by other tools, turned into our run directories.

Four formats are recognised from the content (the file name is only a hint):

  hf_trainer_state          a Hugging Face Trainer `trainer_state.json` (plain Trainer, TRL,
                            axolotl, LLaMA-Factory ...): a JSON object with a `log_history` list
  llamafactory_trainer_log  LLaMA-Factory's `trainer_log.jsonl`: JSON lines with `current_steps`
  openai_results_csv        the results CSV of an OpenAI fine-tuning job (`step,train_loss,...`;
                            the legacy `training_loss` header is read too)
  stdout_metrics            a console capture in which the Trainer printed its log dicts, e.g.
                            `{'loss': 1.23, 'grad_norm': 0.4, 'learning_rate': 2e-05, 'epoch': 0.5}`

Decisions a reader of the imported events should know:

* Eval rows: `val_token_accuracy` comes only from metrics that are token accuracies by
  definition (TRL's `eval_mean_token_accuracy`, OpenAI's `valid_mean_token_accuracy` and the
  legacy `validation_token_accuracy`). A bare `eval_accuracy` is whatever the user's
  `compute_metrics` returned (a classifier's accuracy in most Trainer scripts), so it stays in
  `extra` under its own name. Eval events carry the row's `epoch` in `extra`.
* `tokens` is the cumulative token count the source reports (`num_input_tokens_seen`, TRL's
  `num_tokens`, LLaMA-Factory's `total_tokens`, OpenAI's `elapsed_tokens`). A cumulative count
  of 0 after training steps means the counter was off, so it (and a throughput of 0 computed
  from it) becomes None rather than a false zero.
* LLaMA-Factory's `elapsed_time`/`remaining_time` strings ("4 days, 5:06:09") are kept in
  `extra` as seconds; `time` stays None because the log has no wall-clock timestamps.
* A row logged twice for the same step and kind (a resumed run) keeps its last occurrence.
* `completed`: True when the log has a Trainer summary row (`train_runtime`), when the state's
  `global_step` reached `max_steps`, when the state was saved with `should_training_stop`
  (early stopping), or when LLaMA-Factory's last step reached `total_steps`; False when the log
  states a total and ends before it; None when nothing in the log says either way (OpenAI CSVs,
  stdout logs whose steps are only row numbers).

Stdout logs usually print no step. Steps are derived, in this order, and the way used is
recorded in `summary["steps_from"]`:

1. `explicit`: every train dict has a `step` (or `global_step`) value.
2. `logging_steps`: the log's TrainingArguments dump states `logging_steps=N` (a ratio below 1
   is resolved against the total the way the Trainer does); train row k (1-based) is step k*N,
   with `logging_first_step=True` adding a first row at step 1. When the rows carry epochs the
   result must agree with them (epoch proportional to step within the printed rounding), else
   the next rule is tried.
3. `epoch`: steps per epoch S is taken from the Trainer's banner ("Total optimization steps = T"
   over "Num Epochs = E") or from how far the progress bar got ("R/T" at the summary row's
   final epoch). The rows' epochs must then fall on a whole logging interval N = S * epoch/k,
   and every row must agree with step k*N.
4. `row_order`: steps are 1, 2, 3 ... in the order of the train rows (a warning says so), and
   `total_steps` is left None because it counts optimizer steps, not rows (the stated total is
   kept as `summary["stated_total_steps"]`).

Eval dicts get round(epoch * S) when S is known and that lands between the neighbouring train
rows, else the step of the train row before them (the Trainer evaluates right after logging).
"""

from __future__ import annotations

import ast
import codecs
import csv
import hashlib
import io
import itertools
import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.runs import rundir
from core.runs.names import sanitize_run_name
from core.runs.rundir import RunPaths, RunStatus
from store.errors import InputError

FORMATS: tuple[str, ...] = (
    "hf_trainer_state",
    "llamafactory_trainer_log",
    "openai_results_csv",
    "stdout_metrics",
)

EXPECTED = (
    "expected a Hugging Face trainer_state.json (a JSON object with a log_history list), "
    "a LLaMA-Factory trainer_log.jsonl (JSON lines with current_steps), an OpenAI fine-tuning "
    "results CSV (columns step,train_loss,...) or a training stdout log with metric dicts "
    "such as {'loss': 1.23, 'learning_rate': 2e-05, 'epoch': 0.5}"
)

# Logs are read whole; a file this large is not a training log.
MAX_BYTES = 1 << 30

_TRAIN, _EVAL = 0, 1

Number = int | float


@dataclass(frozen=True, slots=True)
class ImportedLog:
    format: str
    events: list[dict[str, Any]]
    total_steps: int | None
    completed: bool | None
    summary: dict[str, Any]
    warnings: list[str]


# ---------------------------------------------------------------------------------------------
# Values


_NUMERIC_TEXT = re.compile(
    r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE
)


def _number(value: Any) -> Number | None:
    """A metric value as a number: numeric strings too, NaN and infinities kept (they are data)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        # float() alone would also take "1_000" and surrounding junk we do not want to bless.
        if _NUMERIC_TEXT.fullmatch(text):
            return float(text)
    return None


def _float(value: Any) -> float | None:
    number = _number(value)
    return None if number is None else float(number)


def _int(value: Any) -> int | None:
    number = _number(value)
    if number is None or not math.isfinite(number) or number != int(number):
        return None
    return int(number)


def _numbers(row: dict[Any, Any]) -> dict[str, Number]:
    return {
        key: number
        for key, value in row.items()
        if isinstance(key, str) and (number := _number(value)) is not None
    }


_DURATION = re.compile(r"(?:(\d+)\s+days?,\s*)?(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)")


def _duration_seconds(value: Any) -> float | None:
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


def _is_eval_key(key: str) -> bool:
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


def _has_train_metrics(numbers: dict[str, Number]) -> bool:
    return any(not _is_eval_key(key) and key not in _CONTEXT for key in numbers)


def _has_eval_metrics(numbers: dict[str, Number]) -> bool:
    return any(_is_eval_key(key) for key in numbers)


def _take(values: dict[str, Number], names: tuple[str, ...]) -> Number | None:
    for name in names:
        if name in values:
            return values.pop(name)
    return None


def _train_event(numbers: dict[str, Number], step: int, time: float | None) -> dict[str, Any]:
    values = {k: v for k, v in numbers.items() if not _is_eval_key(k) and k not in _NOT_EXTRA}
    loss = _take(values, ("loss", "train_loss", "training_loss"))
    lr = _take(values, ("learning_rate", "lr"))
    grad_norm = _take(values, ("grad_norm",))
    tokens = _int(_take(values, _TOKEN_KEYS))
    tokens_per_s = _take(values, ("throughput", "tokens_per_second"))
    if tokens == 0 and step > 0:
        tokens = None
        if tokens_per_s == 0:
            tokens_per_s = None
    return {
        "type": "train",
        "time": time,
        "step": step,
        "epoch": _float(numbers.get("epoch")),
        "loss": _float(loss),
        "lr": _float(lr),
        "grad_norm": _float(grad_norm),
        "tokens": tokens,
        "tokens_per_s": _float(tokens_per_s),
        "mem_allocated": None,
        "mem_reserved": None,
        "mem_peak": None,
        "extra": values,
    }


def _eval_event(
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
        "val_loss": _float(val_loss),
        "val_token_accuracy": _float(accuracy),
        "extra": extra,
    }


def _trainer_eval_event(
    numbers: dict[str, Number], step: int, time: float | None
) -> dict[str, Any]:
    values = {k: v for k, v in numbers.items() if _is_eval_key(k)}
    val_loss = _take(values, ("eval_loss", "eval/loss"))
    accuracy = _take(values, ("eval_mean_token_accuracy", "eval/mean_token_accuracy"))
    if "epoch" in numbers:
        values["epoch"] = numbers["epoch"]
    return _eval_event(step, time, val_loss, accuracy, values)


class _Events:
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
        if _has_train_metrics(numbers):
            self.add(_TRAIN, _train_event(numbers, step, time))
            added = True
        if _has_eval_metrics(numbers):
            self.add(_EVAL, _trainer_eval_event(numbers, step, time))
            added = True
        return added

    def sorted(self) -> list[dict[str, Any]]:
        return [self._events[key] for key in sorted(self._events)]

    def warn_duplicates(self, warnings: list[str]) -> None:
        if self.duplicates:
            warnings.append(
                f"{_plural(self.duplicates, 'row')} repeated a step already logged "
                "(a resumed run?); the last row for each step was kept"
            )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _counted(count: int, noun: str, rest: str) -> str:
    """E.g. "3 lines were not JSON objects and were skipped", with "was" for one."""
    return f"{_plural(count, noun)} " + rest.format(were="was" if count == 1 else "were")


def _is_summary(numbers: dict[str, Number]) -> bool:
    return "train_runtime" in numbers


# ---------------------------------------------------------------------------------------------
# Reading and sniffing


def _read_bytes(path: Path) -> bytes:
    try:
        if path.is_dir():
            raise InputError(f"{path} is a directory; {EXPECTED}")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputError(
                f"{path} is {size / 2**20:.0f} MiB, too large to be a training log; {EXPECTED}"
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; {EXPECTED}") from None
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror or exc}); {EXPECTED}") from None


_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")


def _decode(data: bytes, path: Path, warnings: list[str]) -> str:
    if not data.strip():
        raise InputError(f"{path} is empty; {EXPECTED}")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # PowerShell's `>` writes UTF-16 with a BOM: a common way to capture a Windows run.
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise InputError(f"{path} starts with a UTF-16 mark but is not UTF-16 text") from None
    else:
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", errors="replace")
            bad = text.count("\ufffd")
            if bad > max(8, len(text) // 100):
                raise InputError(f"{path} is not UTF-8 text (binary data?); {EXPECTED}") from None
            warnings.append(_counted(bad, "byte", "{were} not UTF-8 and {were} replaced"))
    if len(_CONTROL.findall(text)) > max(8, len(text) // 100):
        raise InputError(f"{path} holds binary data, not text; {EXPECTED}")
    if not text.strip():
        raise InputError(f"{path} holds only whitespace; {EXPECTED}")
    return text


def parse_training_log(path: Path) -> ImportedLog:
    """Read a training log written by another tool; InputError when it cannot be used."""
    return _parse(_read_bytes(path), path)


def _parse(data: bytes, path: Path) -> ImportedLog:
    warnings: list[str] = []
    text = _decode(data, path, warnings)
    try:
        return _sniff(text, path, warnings)
    except InputError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        # The parsers check what they read; this only keeps an unforeseen shape from
        # surfacing as a traceback.
        raise InputError(
            f"{path} could not be read as a training log ({type(exc).__name__}: {exc}); {EXPECTED}"
        ) from exc


def _sniff(text: str, path: Path, warnings: list[str]) -> ImportedLog:
    stripped = text.strip()
    if stripped[0] in "{[":
        try:
            whole = json.loads(stripped)
        except (ValueError, RecursionError) as exc:
            whole = None
            first_line = stripped.split("\n", 1)[0].strip()
            looks_whole = first_line in ("{", "[") or '"log_history"' in stripped
            if looks_whole:
                detail = (
                    f"{exc.msg} at line {exc.lineno} column {exc.colno}"
                    if isinstance(exc, json.JSONDecodeError)
                    else type(exc).__name__
                )
                kind = (
                    "looks like a Hugging Face trainer_state.json"
                    if '"log_history"' in stripped
                    else "starts like a JSON document"
                )
                raise InputError(
                    f"{path} {kind} but is not valid JSON ({detail}); the file may be cut "
                    f"short or damaged. Expected a complete JSON document: {EXPECTED}"
                ) from None
        if isinstance(whole, dict):
            if "log_history" in whole:
                return _parse_hf_state(whole, path, warnings)
            if "current_steps" in whole:
                return _parse_llamafactory([whole], 0, path, warnings)
            keys = ", ".join(sorted(str(key) for key in whole)[:8])
            raise InputError(
                f"{path} is a JSON object without log_history or current_steps "
                f"(keys: {keys or 'none'}); {EXPECTED}"
            )
        if whole is not None:
            raise InputError(
                f"{path} is JSON of another shape (a {type(whole).__name__}); {EXPECTED}"
            )
    rows, not_json = _json_lines(text)
    if any("current_steps" in row for row in rows):
        return _parse_llamafactory(rows, not_json, path, warnings)
    header = _csv_header(text, path)
    if header is not None:
        return _parse_openai_csv(text, header, path, warnings)
    return _parse_stdout(text, path, warnings)


def _json_lines(text: str) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    not_json = 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line[0] != "{":
            not_json += 1
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            not_json += 1
            continue
        if isinstance(value, dict):
            rows.append(value)
        else:
            not_json += 1
    return rows, not_json


# ---------------------------------------------------------------------------------------------
# Hugging Face trainer_state.json

_STATE_SUMMARY_KEYS = (
    "best_metric",
    "best_model_checkpoint",
    "best_global_step",
    "global_step",
    "max_steps",
    "num_train_epochs",
    "epoch",
    "logging_steps",
    "eval_steps",
    "save_steps",
    "train_batch_size",
    "total_flos",
    "num_input_tokens_seen",
)


def _parse_hf_state(state: dict[str, Any], path: Path, warnings: list[str]) -> ImportedLog:
    history = state["log_history"]
    if not isinstance(history, list):
        raise InputError(
            f"{path}: log_history is a {type(history).__name__}, not a list of rows; {EXPECTED}"
        )
    events = _Events()
    summary: dict[str, Any] = {
        key: state[key]
        for key in _STATE_SUMMARY_KEYS
        if isinstance(state.get(key), int | float | str) and not isinstance(state[key], bool)
    }
    summary_rows = 0
    skipped_no_step = 0
    skipped_other = 0
    for row in history:
        if not isinstance(row, dict):
            skipped_other += 1
            continue
        numbers = _numbers(row)
        if _is_summary(numbers):
            summary_rows += 1
            summary.update(numbers)
            continue
        step = _int(row.get("step"))
        if step is None or step < 0:
            if _has_train_metrics(numbers) or _has_eval_metrics(numbers):
                skipped_no_step += 1
            continue
        if not events.add_row(numbers, step):
            skipped_other += 1
    if skipped_no_step:
        warnings.append(_counted(skipped_no_step, "row", "without a usable step {were} skipped"))
    if skipped_other:
        warnings.append(_counted(skipped_other, "row", "without metrics {were} skipped"))
    if summary_rows > 1:
        warnings.append(f"{summary_rows} summary rows; their values were merged, last wins")
    events.warn_duplicates(warnings)
    ordered = events.sorted()
    if not ordered and not summary_rows:
        raise InputError(
            f"{path}: log_history has no train, eval or summary rows ({len(history)} rows); "
            'expected rows such as {"loss": ..., "step": ...}'
        )
    if not ordered:
        logging_steps = _int(state.get("logging_steps"))
        reason = (
            f" (logging_steps {logging_steps} is more than the steps run)" if logging_steps else ""
        )
        warnings.append(f"the log has only a final summary row, no per-step rows{reason}")

    max_steps = _int(state.get("max_steps"))
    total_steps = max_steps if max_steps is not None and max_steps > 0 else None
    global_step = _int(state.get("global_step"))
    control = state.get("stateful_callbacks")
    trainer_control = control.get("TrainerControl") if isinstance(control, dict) else None
    args = trainer_control.get("args") if isinstance(trainer_control, dict) else None
    stop_requested = isinstance(args, dict) and args.get("should_training_stop") is True
    reached = total_steps is not None and global_step is not None and global_step >= total_steps
    completed: bool | None
    if summary_rows or reached or stop_requested:
        # A state saved with the stop flag set was stopped on purpose (early stopping).
        completed = True
    elif total_steps is not None and global_step is not None:
        completed = False
    else:
        completed = None
    return ImportedLog("hf_trainer_state", ordered, total_steps, completed, summary, warnings)


# ---------------------------------------------------------------------------------------------
# LLaMA-Factory trainer_log.jsonl


def _parse_llamafactory(
    rows: list[dict[str, Any]], not_json: int, path: Path, warnings: list[str]
) -> ImportedLog:
    if not_json:
        warnings.append(_counted(not_json, "line", "{were} not JSON objects and {were} skipped"))
    events = _Events()
    total_steps: int | None = None
    last_step: int | None = None
    summary: dict[str, Any] = {}
    no_step = 0
    for row in rows:
        step = _int(row.get("current_steps"))
        if step is None or step < 0:
            no_step += 1
            continue
        total = _int(row.get("total_steps"))
        if total is not None and total > 0:
            total_steps = total if total_steps is None else max(total_steps, total)
        last_step = step if last_step is None else max(last_step, step)
        converted = dict(row)
        for key in ("elapsed_time", "remaining_time"):
            if key in converted:
                converted[key] = _duration_seconds(converted[key])
        numbers = _numbers(converted)
        if not events.add_row(numbers, step):
            # The closing line (same step, no loss) records where and when training ended.
            summary = {k: v for k, v in numbers.items() if k not in ("current_steps",)}
            summary["step"] = step
    if no_step:
        warnings.append(_counted(no_step, "line", "without a usable current_steps {were} skipped"))
    events.warn_duplicates(warnings)
    ordered = events.sorted()
    if not ordered:
        raise InputError(
            f"{path}: no line of this LLaMA-Factory trainer_log.jsonl holds a loss or eval "
            'metric; expected lines such as {"current_steps": 10, "loss": 1.2, ...}'
        )
    completed: bool | None = None
    if total_steps is not None and last_step is not None:
        completed = last_step >= total_steps
    return ImportedLog(
        "llamafactory_trainer_log", ordered, total_steps, completed, summary, warnings
    )


# ---------------------------------------------------------------------------------------------
# OpenAI fine-tuning results CSV

_CSV_CELL = re.compile(r"[A-Za-z_][\w./-]*")
_OPENAI_LOSS = ("train_loss", "training_loss")


def _csv_header(text: str, path: Path) -> list[str] | None:
    """The header when the file is a CSV table; InputError for a CSV we cannot use."""
    lines = list(itertools.islice((line for line in io.StringIO(text) if line.strip()), 2))
    try:
        header = [cell.strip() for cell in next(csv.reader(lines[:1]))]
        second = next(csv.reader(lines[1:])) if len(lines) > 1 else None
    except (csv.Error, StopIteration):
        return None
    if len(header) < 2 or not all(_CSV_CELL.fullmatch(cell) for cell in header):
        return None
    if path.suffix.lower() != ".csv" and (second is None or len(second) != len(header)):
        return None
    lower = [cell.lower() for cell in header]
    if "step" not in lower:
        raise InputError(
            f"{path} is a CSV without a step column (columns: {', '.join(header[:10])}); "
            "expected an OpenAI fine-tuning results CSV with columns step,train_loss,"
            "train_accuracy,valid_loss,valid_mean_token_accuracy"
        )
    if not any(name in lower for name in _OPENAI_LOSS):
        raise InputError(
            f"{path} is a CSV with a step column but no train_loss column "
            f"(columns: {', '.join(header[:10])}); expected an OpenAI fine-tuning results CSV "
            "with columns step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
        )
    return header


def _is_valid_column(name: str) -> bool:
    return name.startswith(("valid_", "validation_", "full_valid_"))


def _parse_openai_csv(text: str, header: list[str], path: Path, warnings: list[str]) -> ImportedLog:
    lower = [cell.lower() for cell in header]
    reader = csv.reader(io.StringIO(text))
    for cells in reader:
        if any(cell.strip() for cell in cells):
            break  # the header, already read by _csv_header
    events = _Events()
    bad_rows = 0
    bad_cells = 0
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            bad_rows += 1
            continue
        row = {name: cell.strip() for name, cell in zip(lower, cells, strict=True)}
        step = _int(row.get("step"))
        if step is None or step < 0:
            bad_rows += 1
            continue
        train: dict[str, Number] = {}
        valid: dict[str, Number] = {}
        for name, cell in row.items():
            if name == "step" or cell == "":
                continue
            number = _number(cell)
            if number is None:
                bad_cells += 1
                continue
            (valid if _is_valid_column(name) else train)[name] = number
        if train:
            events.add(_TRAIN, _train_event(train, step, None))
        if valid:
            extra = dict(valid)
            val_loss = _take(extra, ("valid_loss", "validation_loss"))
            accuracy = _take(extra, ("valid_mean_token_accuracy", "validation_token_accuracy"))
            events.add(_EVAL, _eval_event(step, None, val_loss, accuracy, extra))
    if bad_rows:
        warnings.append(
            _counted(bad_rows, "row", "with the wrong number of cells or no step {were} skipped")
        )
    if bad_cells:
        warnings.append(_counted(bad_cells, "cell", "{were} not numbers and {were} left out"))
    events.warn_duplicates(warnings)
    ordered = events.sorted()
    if not ordered:
        raise InputError(
            f"{path}: this OpenAI results CSV has a header but no row with a step and a "
            "metric; expected rows such as 1,2.31,0.55,,"
        )
    return ImportedLog("openai_results_csv", ordered, None, None, {}, warnings)


# ---------------------------------------------------------------------------------------------
# Trainer stdout


_HINT = re.compile(r"loss|learning_rate|grad_norm|eval_|train_runtime")
# Every Trainer log dict has one of these (train rows a loss, eval rows eval_loss or
# eval_runtime); a printed config such as {'learning_rate': 2e-05, 'eval_steps': 500} has none.
_MARKERS = frozenset(
    {"loss", "grad_norm", "train_loss", "train_runtime", "eval_loss", "eval_runtime"}
)
_CANDIDATE_LIMIT = 200_000
_CALL_NAMES = frozenset(
    {"float", "int", "float16", "float32", "float64", "int32", "int64", "tensor", "array"}
)
_NAMES: dict[str, Any] = {
    "nan": math.nan,
    "NaN": math.nan,
    "inf": math.inf,
    "Infinity": math.inf,
    "None": None,
    "null": None,
    "True": True,
    "true": True,
    "False": False,
    "false": False,
}


class _NotLiteral:
    """A value the reader does not evaluate (a name, an expression): kept as unknown."""


_UNKNOWN = _NotLiteral()


def _literal(node: ast.expr) -> Any:
    """ast.literal_eval's subset plus what log dicts print: nan, inf, np.float64(0.5)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _literal(node.operand)
        if isinstance(inner, int | float) and not isinstance(inner, bool):
            return -inner if isinstance(node.op, ast.USub) else inner
        return _UNKNOWN
    if isinstance(node, ast.Name):
        return _NAMES.get(node.id, _UNKNOWN)
    if isinstance(node, ast.Call) and len(node.args) == 1:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name in _CALL_NAMES:
            return _literal(node.args[0])
    return _UNKNOWN


_VALUE = r"""'[^'\\]*'|"[^"\\]*"|[\w.+-]+"""
_ITEM = rf"""\s*('[^'\\]*'|"[^"\\]*")\s*:\s*({_VALUE})\s*"""
_FLAT_ITEM = re.compile(_ITEM + ",?")
_BRACES = re.compile(r"\{[^{}]*\}")
_INTEGER = re.compile(r"[+-]?\d+")


def _flat_mapping(text: str) -> dict[str, Any] | None:
    """The common case, {'loss': 1.2, 'epoch': '0.5'}, without the cost of a parser."""
    mapping: dict[str, Any] = {}
    position, end = 1, len(text) - 1
    while position < end:
        match = _FLAT_ITEM.match(text, position, end)
        if match is None:
            return None if text[position:end].strip() else mapping
        position = match.end()
        key, raw = match.group(1)[1:-1], match.group(2)
        if raw[0] in "'\"":
            mapping[key] = raw[1:-1]
        elif raw in _NAMES:
            mapping[key] = _NAMES[raw]
        elif _INTEGER.fullmatch(raw):
            mapping[key] = int(raw)
        elif _NUMERIC_TEXT.fullmatch(raw):
            mapping[key] = float(raw)
        else:
            return None
    return mapping or None


def _parse_mapping(text: str) -> dict[str, Any] | None:
    flat = _flat_mapping(text)
    if flat is not None:
        return flat
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    if isinstance(value, dict):
        return value
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(tree.body, ast.Dict):
        return None
    mapping: dict[str, Any] = {}
    for key, value_node in zip(tree.body.keys, tree.body.values, strict=True):
        if not isinstance(key, ast.Constant) or not isinstance(key.value, str):
            return None
        mapping[key.value] = _literal(value_node)
    return mapping


def _braced(segment: str) -> Iterator[str]:
    """Each innermost {...} in a segment: Trainer log dicts hold no nested braces."""
    for match in _BRACES.finditer(segment):
        if match.end() - match.start() <= _CANDIDATE_LIMIT:
            yield match.group()


def _metric_dict(mapping: dict[str, Any]) -> dict[str, Number] | None:
    """The numbers of a Trainer log dict; None for other dicts a program may print."""
    numbers = _numbers(mapping)
    others = sum(1 for key, value in mapping.items() if key not in numbers and value is not None)
    if others > len(numbers):
        return None
    return numbers if any(key in _MARKERS for key in numbers) else None


@dataclass(slots=True)
class _Row:
    numbers: dict[str, Number]
    train: bool
    eval: bool
    explicit_step: int | None
    epoch: float | None
    step: int = 0


@dataclass(slots=True)
class _Stated:
    """What the console text says about the run around the dicts."""

    total: int | None = None
    epochs: int | None = None
    logging_steps: int | None = None
    logging_first_step: bool = False
    progress: int | None = None


# The patterns start with a literal (no \b or group first) so re can skip ahead quickly:
# a console log can be tens of megabytes of progress bars.
def _last_int(pattern: str, text: str) -> int | None:
    found = re.findall(pattern, text)
    if not found:
        return None
    return _int(found[-1].replace(",", ""))


def _progress(text: str, total: int) -> int | None:
    """How far the progress bar for `total` steps got ("250/250 [")."""
    best: int | None = None
    for match in re.finditer(rf"/{total}\s*\[", text):
        digits = re.search(r"(\d+)$", text[max(0, match.start() - 12) : match.start()])
        if digits is not None:
            count = int(digits.group(1))
            best = count if best is None else max(best, count)
    return best


def _stated(text: str) -> _Stated:
    stated = _Stated()
    stated.total = _last_int(r"Total optimization steps\s*=\s*([\d,]+)", text)
    if stated.total is None:
        stated.total = _last_int(r"Total steps\s*=\s*([\d,]+)", text)  # Unsloth's banner
    stated.epochs = _last_int(r"Num Epochs\s*=\s*([\d,]+)", text)
    strategy = re.findall(
        r"logging_strategy['\"]?\s*[=:]\s*['\"]?(?:IntervalStrategy\.)?(\w+)", text
    )
    by_steps = not strategy or strategy[-1].lower() == "steps"
    found = re.findall(r"logging_steps['\"]?\s*[=:]\s*(\d+(?:\.\d+)?)", text)
    if found and by_steps:
        value = float(found[-1])
        if value >= 1 and value == int(value):
            stated.logging_steps = int(value)
        elif 0 < value < 1 and stated.total:
            # The Trainer reads a ratio below 1 as a fraction of the total steps.
            stated.logging_steps = math.ceil(stated.total * value)
    first = re.findall(r"logging_first_step['\"]?\s*[=:]\s*(\w+)", text)
    stated.logging_first_step = bool(first) and first[-1].lower() == "true"
    if stated.total:
        stated.progress = _progress(text, stated.total)
    return stated


def _epoch_tolerance(epoch: float) -> float:
    # Trainer stdout rounds epochs to 2 decimals (older) or 4 significant digits (newer).
    return 0.0051 + 0.0006 * abs(epoch)


def _row_steps(count: int, interval: int, first_step: bool) -> list[int]:
    if first_step and interval > 1:
        return [1] + [k * interval for k in range(1, count)]
    return [(k + 1) * interval for k in range(count)]


def _agrees(epochs: list[float], steps: list[int], per_epoch: float | None) -> bool:
    """Whether every epoch is step/per_epoch within rounding (per_epoch fitted when None)."""
    if per_epoch is None:
        if epochs[-1] <= 0:
            return False
        per_epoch = steps[-1] / epochs[-1]
        slack = _epoch_tolerance(epochs[-1]) / epochs[-1]
    else:
        slack = 0.0
    if per_epoch <= 0:
        return False
    return all(
        abs(epoch - step / per_epoch) <= _epoch_tolerance(epoch) + slack * epoch + 1e-9
        for epoch, step in zip(epochs, steps, strict=True)
    )


def _derive_steps(
    rows: list[_Row], stated: _Stated, final_epoch: float | None
) -> tuple[str, list[int], float | None, str]:
    """(how, steps of the train rows, steps per epoch or None, a note for the warnings)."""
    train = [row for row in rows if row.train]
    count = len(train)
    if count and all(row.explicit_step is not None for row in train):
        return "explicit", [row.explicit_step or 0 for row in train], None, ""
    epochs = [row.epoch for row in train]
    known: list[float] = [epoch for epoch in epochs if epoch is not None]
    have_epochs = count > 0 and len(known) == count and all(math.isfinite(e) for e in known)
    per_epoch_candidates: list[tuple[float, str]] = []
    if stated.total and stated.epochs:
        why = f"{stated.total} steps over {_plural(stated.epochs, 'epoch')}"
        per_epoch_candidates.append((stated.total / stated.epochs, why))
    if stated.progress and final_epoch and final_epoch > 0:
        per_epoch_candidates.append(
            (
                stated.progress / final_epoch,
                f"the progress bar reached step {stated.progress} at epoch {final_epoch:g}",
            )
        )
    first = stated.logging_first_step
    interval = stated.logging_steps
    if interval:
        steps = _row_steps(count, interval, first)
        if not have_epochs:
            return "logging_steps", steps, None, f"row number x logging_steps ({interval})"
        for per_epoch, why in per_epoch_candidates:
            if _agrees(known, steps, per_epoch):
                note = f"row number x logging_steps ({interval}), matching the epochs ({why})"
                return "logging_steps", steps, per_epoch, note
        if _agrees(known, steps, None):
            note = f"row number x logging_steps ({interval}), matching the epochs"
            return "logging_steps", steps, None, note
    if have_epochs and known[-1] > 0:
        last_index = count - 1 if first else count
        for per_epoch, why in per_epoch_candidates:
            if last_index <= 0:
                break
            estimate = known[-1] * per_epoch / last_index
            interval = round(estimate)
            bound = estimate * _epoch_tolerance(known[-1]) / known[-1] + 1e-6
            if interval < 1 or abs(estimate - interval) > bound:
                continue
            steps = _row_steps(count, interval, first)
            if _agrees(known, steps, per_epoch):
                note = (
                    f"epochs x {per_epoch:g} steps per epoch ({why}), "
                    f"one train row every {interval} steps"
                )
                return "epoch", steps, per_epoch, note
    return "row_order", list(range(1, count + 1)), None, ""


def _parse_stdout(text: str, path: Path, warnings: list[str]) -> ImportedLog:
    rows: list[_Row] = []
    summary: dict[str, Any] = {}
    summary_rows = 0
    for segment in re.split(r"[\r\n]+", text):
        if "{" not in segment or not _HINT.search(segment):
            continue
        for candidate in _braced(segment):
            mapping = _parse_mapping(candidate)
            numbers = None if mapping is None else _metric_dict(mapping)
            if numbers is None:
                continue
            if _is_summary(numbers):
                summary_rows += 1
                summary.update(numbers)
                continue
            explicit = _int(numbers.get("step", numbers.get("global_step")))
            rows.append(
                _Row(
                    numbers=numbers,
                    train=_has_train_metrics(numbers),
                    eval=_has_eval_metrics(numbers),
                    explicit_step=explicit if explicit is not None and explicit >= 0 else None,
                    epoch=_float(numbers.get("epoch")),
                )
            )
    if not rows and not summary_rows:
        raise InputError(f"{path}: no training metric rows were found; {EXPECTED}")
    if summary_rows > 1:
        warnings.append(f"{summary_rows} summary rows; their values were merged, last wins")

    stated = _stated(text)
    final_epoch = _float(summary.get("epoch")) if summary_rows else None
    how, train_steps, per_epoch, note = _derive_steps(rows, stated, final_epoch)
    train_rows = [row for row in rows if row.train]
    for row, step in zip(train_rows, train_steps, strict=True):
        row.step = step
    _place_evals(rows, per_epoch, explicit=how == "explicit")

    events = _Events()
    for row in rows:
        events.add_row(row.numbers, row.step)
    events.warn_duplicates(warnings)
    ordered = events.sorted()

    summary["steps_from"] = how
    total_steps = stated.total
    if how == "row_order":
        if train_rows:
            warnings.append(
                "the log prints no step numbers and none could be derived soundly; steps are "
                "the order of the train rows (1, 2, 3 ...), not optimizer steps"
            )
        if total_steps is not None:
            summary["stated_total_steps"] = total_steps
        total_steps = None
    elif how != "explicit":
        warnings.append(f"the log prints no step numbers; steps were derived as {note}")
    if not ordered:
        warnings.append("the log has only a final summary row, no per-step rows")

    completed: bool | None = None
    last_step = max((int(event["step"]) for event in ordered), default=None)
    if summary_rows:
        completed = True
    elif total_steps is not None and last_step is not None:
        completed = last_step >= total_steps
    return ImportedLog("stdout_metrics", ordered, total_steps, completed, summary, warnings)


def _place_evals(rows: list[_Row], per_epoch: float | None, *, explicit: bool) -> None:
    """Give eval-only rows a step: their own, from their epoch, or the train row before."""
    following: list[int | None] = [None] * len(rows)
    upcoming: int | None = None
    for index in range(len(rows) - 1, -1, -1):
        following[index] = upcoming
        if rows[index].train:
            upcoming = rows[index].step
    previous = 0
    for index, row in enumerate(rows):
        if row.train:
            previous = row.step
            continue
        if explicit and row.explicit_step is not None:
            row.step = row.explicit_step
            continue
        step = previous
        if per_epoch is not None and row.epoch is not None and math.isfinite(row.epoch):
            guess = round(row.epoch * per_epoch)
            after = following[index]
            if guess >= previous and (after is None or guess <= after):
                step = guess
        row.step = step


# ---------------------------------------------------------------------------------------------
# Run directories

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
    data = _read_bytes(source)
    log = _parse(data, source)
    run_name = sanitize_run_name(name or _default_name(source))
    created = rundir.now()
    run_id = rundir.new_run_id(run_name, created)
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


def _last_step(log: ImportedLog) -> int:
    train = [int(event["step"]) for event in log.events if event["type"] == "train"]
    if train:
        return max(train)
    if log.events:
        return max(int(event["step"]) for event in log.events)
    return _int(log.summary.get("step")) or _int(log.summary.get("global_step")) or 0


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
