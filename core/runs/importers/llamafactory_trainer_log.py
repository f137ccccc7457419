"""LLaMA-Factory's `trainer_log.jsonl`: one JSON object a line, each with `current_steps`.

The `elapsed_time`/`remaining_time` strings ("4 days, 5:06:09") are kept in `extra` as
seconds; `time` stays None because the log has no wall-clock timestamps. `completed` is
True when the last step reached `total_steps`, False when it stops short of it.
"""

from __future__ import annotations

from typing import Any

from core.runs.importers.base import ImportedLog, LogSource
from core.runs.importers.events import (
    Events,
    as_int,
    counted,
    duration_seconds,
    numeric_values,
)
from store.errors import InputError


class LlamaFactoryTrainerLog:
    name = "llamafactory_trainer_log"
    expects = "a LLaMA-Factory trainer_log.jsonl (JSON lines with current_steps)"

    def detect(self, source: LogSource) -> float:
        document = source.document
        if document is not None:
            # A one-line log is also one JSON document; a trainer_state.json wins a tie.
            return 0.9 if isinstance(document, dict) and "current_steps" in document else 0.0
        rows, _ = source.json_lines
        return 0.9 if any("current_steps" in row for row in rows) else 0.0

    def read(self, source: LogSource) -> ImportedLog:
        document = source.document
        if isinstance(document, dict):
            return _read_rows([document], 0, source)
        rows, not_json = source.json_lines
        return _read_rows(rows, not_json, source)


def _read_rows(rows: list[dict[str, Any]], not_json: int, source: LogSource) -> ImportedLog:
    path, warnings = source.path, source.warnings
    if not_json:
        warnings.append(counted(not_json, "line", "{were} not JSON objects and {were} skipped"))
    events = Events()
    total_steps: int | None = None
    last_step: int | None = None
    summary: dict[str, Any] = {}
    no_step = 0
    for row in rows:
        step = as_int(row.get("current_steps"))
        if step is None or step < 0:
            no_step += 1
            continue
        total = as_int(row.get("total_steps"))
        if total is not None and total > 0:
            total_steps = total if total_steps is None else max(total_steps, total)
        last_step = step if last_step is None else max(last_step, step)
        converted = dict(row)
        for key in ("elapsed_time", "remaining_time"):
            if key in converted:
                converted[key] = duration_seconds(converted[key])
        numbers = numeric_values(converted)
        if not events.add_row(numbers, step):
            # The closing line (same step, no loss) records where and when training ended.
            summary = {k: v for k, v in numbers.items() if k not in ("current_steps",)}
            summary["step"] = step
    if no_step:
        warnings.append(counted(no_step, "line", "without a usable current_steps {were} skipped"))
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
