"""Hugging Face Trainer `trainer_state.json` (plain Trainer, TRL, axolotl, LLaMA-Factory ...).

A JSON object with a `log_history` list of rows, each with a `step`. `completed` is True when
the history has a Trainer summary row (`train_runtime`), when `global_step` reached
`max_steps`, or when the state was saved with `should_training_stop` (early stopping); False
when it states `max_steps` and `global_step` is short of it.
"""

from __future__ import annotations

from typing import Any

from core.runs.importers.base import ImportedLog, LogSource
from core.runs.importers.events import (
    Events,
    as_int,
    counted,
    has_eval_metrics,
    has_train_metrics,
    is_summary,
    numeric_values,
)
from store.errors import InputError


class HfTrainerState:
    name = "hf_trainer_state"
    expects = "a Hugging Face trainer_state.json (a JSON object with a log_history list)"

    def detect(self, source: LogSource) -> float:
        document = source.document
        return 1.0 if isinstance(document, dict) and "log_history" in document else 0.0

    def read(self, source: LogSource) -> ImportedLog:
        return _read_state(source.document, source)


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


def _read_state(state: dict[str, Any], source: LogSource) -> ImportedLog:
    path, warnings, expected = source.path, source.warnings, source.expected
    history = state["log_history"]
    if not isinstance(history, list):
        raise InputError(
            f"{path}: log_history is a {type(history).__name__}, not a list of rows; {expected}"
        )
    events = Events()
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
        numbers = numeric_values(row)
        if is_summary(numbers):
            summary_rows += 1
            summary.update(numbers)
            continue
        step = as_int(row.get("step"))
        if step is None or step < 0:
            if has_train_metrics(numbers) or has_eval_metrics(numbers):
                skipped_no_step += 1
            continue
        if not events.add_row(numbers, step):
            skipped_other += 1
    if skipped_no_step:
        warnings.append(counted(skipped_no_step, "row", "without a usable step {were} skipped"))
    if skipped_other:
        warnings.append(counted(skipped_other, "row", "without metrics {were} skipped"))
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
        logging_steps = as_int(state.get("logging_steps"))
        reason = (
            f" (logging_steps {logging_steps} is more than the steps run)" if logging_steps else ""
        )
        warnings.append(f"the log has only a final summary row, no per-step rows{reason}")

    max_steps = as_int(state.get("max_steps"))
    total_steps = max_steps if max_steps is not None and max_steps > 0 else None
    global_step = as_int(state.get("global_step"))
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
