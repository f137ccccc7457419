"""The results CSV of an OpenAI fine-tuning job (`step,train_loss,...`).

The legacy `training_loss` header is read too. The CSV states no total, so `completed` is
None.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from pathlib import Path

from core.runs.importers.base import ImportedLog, LogSource
from core.runs.importers.events import (
    EVAL,
    TRAIN,
    Events,
    Number,
    as_int,
    as_number,
    counted,
    eval_event,
    take,
    train_event,
)
from store.errors import InputError


class OpenAiResultsCsv:
    name = "openai_results_csv"
    expects = "an OpenAI fine-tuning results CSV (columns step,train_loss,...)"

    def detect(self, source: LogSource) -> float:
        # Any CSV table is claimed, so that one without the columns we need is refused
        # with its columns named rather than read as a console capture.
        if source.document is not None:
            return 0.0
        return 0.8 if _table_header(source.text, source.path) is not None else 0.0

    def read(self, source: LogSource) -> ImportedLog:
        return _read_table(source)


_CSV_CELL = re.compile(r"[A-Za-z_][\w./-]*")
_OPENAI_LOSS = ("train_loss", "training_loss")


def _table_header(text: str, path: Path) -> list[str] | None:
    """The header when the file is laid out as a CSV table, else None."""
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
    return header


def _usable_header(text: str, path: Path) -> list[str]:
    """The header of a CSV table; InputError for a CSV that is not a results CSV."""
    header = _table_header(text, path)
    if header is None:
        raise InputError(f"{path} is not laid out as a CSV table")
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


def _read_table(source: LogSource) -> ImportedLog:
    text, path, warnings = source.text, source.path, source.warnings
    header = _usable_header(text, path)
    lower = [cell.lower() for cell in header]
    reader = csv.reader(io.StringIO(text))
    for cells in reader:
        if any(cell.strip() for cell in cells):
            break  # the header, already read by _usable_header
    events = Events()
    bad_rows = 0
    bad_cells = 0
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            bad_rows += 1
            continue
        row = {name: cell.strip() for name, cell in zip(lower, cells, strict=True)}
        step = as_int(row.get("step"))
        if step is None or step < 0:
            bad_rows += 1
            continue
        train: dict[str, Number] = {}
        valid: dict[str, Number] = {}
        for name, cell in row.items():
            if name == "step" or cell == "":
                continue
            number = as_number(cell)
            if number is None:
                bad_cells += 1
                continue
            (valid if _is_valid_column(name) else train)[name] = number
        if train:
            events.add(TRAIN, train_event(train, step, None))
        if valid:
            extra = dict(valid)
            val_loss = take(extra, ("valid_loss", "validation_loss"))
            accuracy = take(extra, ("valid_mean_token_accuracy", "validation_token_accuracy"))
            events.add(EVAL, eval_event(step, None, val_loss, accuracy, extra))
    if bad_rows:
        warnings.append(
            counted(bad_rows, "row", "with the wrong number of cells or no step {were} skipped")
        )
    if bad_cells:
        warnings.append(counted(bad_cells, "cell", "{were} not numbers and {were} left out"))
    events.warn_duplicates(warnings)
    ordered = events.sorted()
    if not ordered:
        raise InputError(
            f"{path}: this OpenAI results CSV has a header but no row with a step and a "
            "metric; expected rows such as 1,2.31,0.55,,"
        )
    return ImportedLog("openai_results_csv", ordered, None, None, {}, warnings)
