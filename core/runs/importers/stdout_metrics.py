"""A console capture in which the Trainer printed its log dicts.

E.g. `{'loss': 1.23, 'grad_norm': 0.4, 'learning_rate': 2e-05, 'epoch': 0.5}`, one per
logging step, among progress bars and anything else the script printed.

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

`completed` is True when the log has the Trainer's summary dict (`train_runtime`), False when
it states a total and its steps end before it, None otherwise (steps that are only row
numbers say nothing about the total).
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.runs.importers.base import ImportedLog, LogSource
from core.runs.importers.events import (
    NUMERIC_TEXT,
    Events,
    Number,
    as_float,
    as_int,
    has_eval_metrics,
    has_train_metrics,
    is_summary,
    numeric_values,
    plural,
)
from store.errors import InputError


class StdoutMetrics:
    name = "stdout_metrics"
    expects = (
        "a training stdout log with metric dicts "
        "such as {'loss': 1.23, 'learning_rate': 2e-05, 'epoch': 0.5}"
    )

    def detect(self, source: LogSource) -> float:
        if source.document is not None:
            return 0.0  # one JSON document is a file a tool saved, not a console capture
        if "{" in source.text and _HINT.search(source.text):
            return 0.5
        # The last resort: a console capture can hold anything, and reading it says best
        # why it is no training log.
        return 0.05

    def read(self, source: LogSource) -> ImportedLog:
        return _read_console(source)


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
        elif NUMERIC_TEXT.fullmatch(raw):
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
    numbers = numeric_values(mapping)
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
    return as_int(found[-1].replace(",", ""))


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
        why = f"{stated.total} steps over {plural(stated.epochs, 'epoch')}"
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


def _read_console(source: LogSource) -> ImportedLog:
    text, path, warnings, expected = source.text, source.path, source.warnings, source.expected
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
            if is_summary(numbers):
                summary_rows += 1
                summary.update(numbers)
                continue
            explicit = as_int(numbers.get("step", numbers.get("global_step")))
            rows.append(
                _Row(
                    numbers=numbers,
                    train=has_train_metrics(numbers),
                    eval=has_eval_metrics(numbers),
                    explicit_step=explicit if explicit is not None and explicit >= 0 else None,
                    epoch=as_float(numbers.get("epoch")),
                )
            )
    if not rows and not summary_rows:
        raise InputError(f"{path}: no training metric rows were found; {expected}")
    if summary_rows > 1:
        warnings.append(f"{summary_rows} summary rows; their values were merged, last wins")

    stated = _stated(text)
    final_epoch = as_float(summary.get("epoch")) if summary_rows else None
    how, train_steps, per_epoch, note = _derive_steps(rows, stated, final_epoch)
    train_rows = [row for row in rows if row.train]
    for row, step in zip(train_rows, train_steps, strict=True):
        row.step = step
    _place_evals(rows, per_epoch, explicit=how == "explicit")

    events = Events()
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
