"""Importing training logs written by other tools: real files, synthetic edge cases, run dirs."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.runs import imports, rundir
from core.runs.imports import ImportedLog, create_imported_run, parse_training_log
from store.errors import InputError
from tests.trainer_logs import IN_REPO, trainer_logs

FIXTURE_FILES = trainer_logs()
FIXTURES = IN_REPO


def trains(log: ImportedLog) -> list[dict[str, Any]]:
    return [event for event in log.events if event["type"] == "train"]


def evals(log: ImportedLog) -> list[dict[str, Any]]:
    return [event for event in log.events if event["type"] == "eval"]


def at(events: list[dict[str, Any]], step: int) -> dict[str, Any]:
    (found,) = [event for event in events if event["step"] == step]
    return found


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# -- the real files ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda path: path.name[:70])
def test_every_real_log_parses_into_ordered_events(path: Path) -> None:
    log = parse_training_log(path)
    assert log.format in imports.FORMATS
    steps = [event["step"] for event in log.events]
    assert steps == sorted(steps)
    for before, after in zip(log.events, log.events[1:], strict=False):
        if before["step"] == after["step"]:
            assert (before["type"], after["type"]) == ("train", "eval")
    assert log.events or log.summary.get("train_runtime") is not None
    for event in log.events:
        assert isinstance(event["step"], int) and event["step"] >= 0
        assert isinstance(event["extra"], dict)
        if event["type"] == "train":
            assert set(event) >= {"epoch", "loss", "lr", "grad_norm", "tokens", "mem_peak"}
    json.dumps(log.events)  # every value is plain JSON (NaN as the JSON extension)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda path: path.name[:70])
def test_every_real_log_imports_as_a_run(tmp_path: Path, path: Path) -> None:
    log = parse_training_log(path)
    paths = create_imported_run(tmp_path / "runs", path)
    records = list(rundir.iter_records(paths.events))
    assert records[0]["type"] == "start" and len(records) == 1 + len(log.events)
    status = rundir.read_status(paths)
    assert status is not None
    assert status.state == ("succeeded" if log.completed else "interrupted")
    assert status.total_steps == log.total_steps
    copy = (paths.root / "source" / path.name).read_bytes()
    assert copy == path.read_bytes()
    run = rundir.read_json(paths.run_json)
    assert run is not None and run["source_sha256"] == hashlib.sha256(copy).hexdigest()


# A unique part of the file name -> (format, #train, #eval, first train step, last train step,
# total_steps, completed); the counts are those SOURCES.md describes.
Expected = tuple[str, int, int, int | None, int | None, int | None, bool | None]
EXPECTED: dict[str, Expected] = {
    "llamafactory_qwen3_lora": ("hf_trainer_state", 0, 0, None, None, 768, True),
    "roberta_lora": ("hf_trainer_state", 24, 24, 100, 2400, 2400, True),
    "hf_trainer_state__trl_grpo": ("hf_trainer_state", 40, 0, 5, 200, 200, True),
    "tinyllama": ("hf_trainer_state", 186, 14, 15, 2790, 2808, False),
    "vit_image": ("hf_trainer_state", 63, 6, 10, 630, 630, True),
    "whisper_tiny": ("hf_trainer_state", 2000, 100, 50, 100000, 100000, True),
    "luojiu_7b": ("llamafactory_trainer_log", 1742, 0, 5, 8710, 8712, True),
    "mistral_7b": ("llamafactory_trainer_log", 866, 0, 10, 8660, 8660, True),
    "qwen2.5_7b": ("llamafactory_trainer_log", 675, 13, 10, 6750, 6750, True),
    "stdout__hf_seq2seq": ("stdout_metrics", 10, 10, 500, 5000, 5490, True),
    "stdout__trl_grpo": ("stdout_metrics", 50, 0, 5, 250, 250, True),
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_real_log_shape_matches_sources_md(key: str) -> None:
    matches = [path for path in FIXTURE_FILES if key in path.name]
    if not matches:
        pytest.skip(f"no file matching {key} in {FIXTURES}")
    (path,) = matches
    fmt, n_train, n_eval, first, last, total, completed = EXPECTED[key]
    log = parse_training_log(path)
    assert log.format == fmt
    assert len(trains(log)) == n_train
    assert len(evals(log)) == n_eval
    if n_train:
        assert trains(log)[0]["step"] == first
        assert trains(log)[-1]["step"] == last
    assert log.total_steps == total
    assert log.completed is completed


def fixture_log(name: str) -> ImportedLog:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"{path} is not on this machine")
    return parse_training_log(path)


def test_trl_sft_values_eval_accuracy_and_best_metric() -> None:
    log = fixture_log("hf_trainer_state__trl_sft_lora_tinyllama__eval_rows_best_metric.json")
    first = trains(log)[0]
    assert first["loss"] == 2.0762
    assert first["lr"] == 2.456140350877193e-06
    assert first["tokens"] == 61440  # TRL's num_tokens (a float in the file)
    assert first["extra"] == {"mean_token_accuracy": 0.5809640631079673}
    assert trains(log)[-1]["loss"] == 1.025
    last_eval = at(evals(log), 2800)
    assert last_eval["val_loss"] == 1.1219322681427002
    assert last_eval["val_token_accuracy"] == 0.7508529225795264
    assert last_eval["extra"]["eval_runtime"] == 311.3049
    assert [event["step"] for event in evals(log)] == list(range(200, 2801, 200))
    assert log.summary["best_metric"] == 1.1219322681427002
    assert log.summary["best_model_checkpoint"] == "./results/checkpoint-2800"
    assert "train_runtime" not in log.summary  # no summary row: the run was cut at 2800 of 2808


def test_summary_row_only_state_has_no_events_but_a_summary() -> None:
    log = fixture_log("hf_trainer_state__llamafactory_qwen3_lora__final_summary_row_only.json")
    assert log.events == []
    assert log.summary["train_loss"] == 0.9732094605763754
    assert log.summary["train_runtime"] == 5980.6912
    assert log.summary["num_input_tokens_seen"] == 24689312
    assert log.summary["step"] == 768
    assert any("only a final summary row" in warning for warning in log.warnings)


def test_whisper_eval_wer_and_summary_row() -> None:
    log = fixture_log("hf_trainer_state__whisper_tiny_asr__2101_rows_eval_wer.json")
    assert trains(log)[0]["loss"] == 2.936
    assert trains(log)[0]["grad_norm"] is None  # older Trainer: no grad_norm
    last_eval = at(evals(log), 100000)
    assert last_eval["val_loss"] == 0.512780487537384
    assert last_eval["extra"]["eval_wer"] == 24.96954933008526
    assert last_eval["val_token_accuracy"] is None
    assert log.summary["train_loss"] == 0.2913371723175049
    assert log.summary["best_metric"] == 24.878197320341048
    assert log.summary["best_model_checkpoint"] == "./checkpoint-98000"
    assert log.summary["num_train_epochs"] == 9223372036854775807


def test_vit_eval_f1_stays_in_extra() -> None:
    log = fixture_log("hf_trainer_state__vit_image_classification__eval_f1_best_metric.json")
    assert trains(log)[0]["loss"] == 0.2579
    assert trains(log)[-1]["loss"] == 0.0033
    assert "eval_f1" in evals(log)[0]["extra"]
    assert log.summary["train_runtime"] == 358.5996
    assert log.summary["best_metric"] == 0.043110452592372894


def test_roberta_crlf_classifier_accuracy_is_not_token_accuracy() -> None:
    log = fixture_log(
        "hf_trainer_state__roberta_lora_text_classification__checkpoint-2400_crlf.json"
    )
    first = at(trains(log), 100)
    assert first["loss"] == 1.3676
    assert first["grad_norm"] == 2.308269739151001
    first_eval = at(evals(log), 100)
    assert first_eval["val_loss"] == 1.3423817157745361
    assert first_eval["val_token_accuracy"] is None
    assert first_eval["extra"]["eval_accuracy"] == 0.7328125
    assert "best_metric" not in log.summary  # null in the file


def test_grpo_slash_keys_land_in_extra() -> None:
    log = fixture_log("hf_trainer_state__trl_grpo__slash_metric_keys.json")
    first = trains(log)[0]
    assert first["loss"] == -0.007858997583389283
    assert first["tokens"] == 29865
    assert first["extra"]["rewards/format_reward_fn/mean"] == 0.55
    assert first["extra"]["completions/clipped_ratio"] == 0.9
    assert first["extra"]["kl"] == 7.837624616513495e-06
    assert "num_tokens" not in first["extra"]
    assert [event["step"] for event in trains(log)] == list(range(5, 201, 5))


def test_llamafactory_lr_key_eval_rows_and_times() -> None:
    log = fixture_log("llamafactory_trainer_log__qwen2.5_7b__lr_key_with_eval_rows.jsonl")
    first = trains(log)[0]
    assert first["loss"] == 2.219
    assert first["lr"] == 1.3333333333333334e-06
    assert first["extra"]["elapsed_time"] == 32.0  # "0:00:32"
    assert first["time"] is None
    first_eval = at(evals(log), 500)
    assert first_eval["val_loss"] == 1.6410622596740723
    last = trains(log)[-1]
    assert (last["step"], last["loss"], last["lr"]) == (6750, 1.5999, 6.68570453998818e-12)
    assert log.summary["elapsed_time"] == 6 * 3600 + 48 * 60 + 6


def test_llamafactory_nulls_and_day_long_etas() -> None:
    log = fixture_log(
        "llamafactory_trainer_log__luojiu_7b__null_eval_predict_reward_days_eta.jsonl"
    )
    first = trains(log)[0]
    assert first["loss"] == 1.7484
    assert first["extra"] == {"percentage": 0.06, "elapsed_time": 209.0, "remaining_time": 363969.0}
    assert trains(log)[-1]["loss"] == 1.3703  # the closing null line is not an event
    assert log.summary["elapsed_time"] == 4 * 86400 + 7 * 3600 + 19 * 60 + 52


def test_llamafactory_zero_token_counter_is_missing_not_zero() -> None:
    log = fixture_log("llamafactory_trainer_log__mistral_7b__learning_rate_throughput_string.jsonl")
    first = trains(log)[0]
    assert first["loss"] == 2.4977
    assert first["lr"] == 5.773672055427253e-07
    assert first["tokens"] is None and first["tokens_per_s"] is None
    last = trains(log)[-1]
    assert (last["step"], last["loss"], last["lr"], last["epoch"]) == (8660, 0.1333, 0.0, 4.0)


def test_cpt_stdout_steps_from_logging_steps_and_evals_from_epochs() -> None:
    log = fixture_log("stdout__hf_seq2seq_trainer_cpt__numeric_dict_lines_crlf.txt")
    assert [event["step"] for event in trains(log)] == list(range(500, 5001, 500))
    assert [event["step"] for event in evals(log)] == list(range(549, 5491, 549))
    first = trains(log)[0]
    assert (first["loss"], first["grad_norm"], first["epoch"]) == (1.1409, 2.757542133331299, 0.91)
    first_eval = evals(log)[0]
    assert first_eval["val_loss"] == 0.6597685217857361
    assert first_eval["extra"]["eval_rouge-1"] == 46.5406
    assert log.summary["train_loss"] == 0.4479398911550831
    assert log.summary["steps_from"] == "logging_steps"


def test_grpo_stdout_string_values_app_dicts_and_tqdm_noise() -> None:
    log = fixture_log("stdout__trl_grpo__string_valued_dict_lines.log")
    assert [event["step"] for event in trains(log)] == list(range(5, 251, 5))
    first = trains(log)[0]
    assert (first["loss"], first["grad_norm"], first["lr"]) == (-0.1081, 0.3156, 8e-06)
    assert first["tokens"] == 24330  # '2.433e+04'
    assert first["epoch"] == 0.0625
    assert first["extra"]["rewards/format_reward_fn/mean"] == 0.625
    assert all("agent_id" not in event["extra"] for event in log.events)
    assert log.summary["train_runtime"] == 6914.0
    assert log.summary["train_loss"] == -0.009873
    assert log.summary["steps_from"] == "epoch"


# -- synthetic files ---------------------------------------------------------------------------


def test_nan_and_infinity_are_kept_as_data(tmp_path: Path) -> None:
    state = (
        '{"log_history": [\n'
        '  {"loss": NaN, "grad_norm": Infinity, "learning_rate": 1e-4, "epoch": 0.1, "step": 10},\n'
        '  {"eval_loss": -Infinity, "eval_mean_token_accuracy": 0.5, "epoch": 0.1, "step": 10}\n'
        '], "max_steps": 100, "global_step": 10}'
    )
    log = parse_training_log(write(tmp_path / "trainer_state.json", state))
    train, evaluation = log.events
    assert train["type"] == "train" and math.isnan(train["loss"])
    assert train["grad_norm"] == math.inf
    assert evaluation["val_loss"] == -math.inf
    assert evaluation["val_token_accuracy"] == 0.5
    assert log.completed is False and log.total_steps == 100


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    state = '{"log_history": [{"loss": 1.5, "step": 1}], "max_steps": 1, "global_step": 1}'
    body = b"\xef\xbb\xbf" + state.replace(" ", "\r\n ").encode()
    log = parse_training_log(write(tmp_path / "state.json", body))
    assert log.format == "hf_trainer_state"
    assert log.events[0]["loss"] == 1.5 and log.completed is True
    lf = '{"current_steps": 5, "total_steps": 10, "loss": 2.0, "lr": 0.1, "epoch": 0.5}\r\n'
    log = parse_training_log(write(tmp_path / "log.jsonl", b"\xef\xbb\xbf" + lf.encode()))
    assert log.format == "llamafactory_trainer_log" and log.completed is False


def test_row_with_train_and_eval_metrics_gives_two_events(tmp_path: Path) -> None:
    state = {"log_history": [{"loss": 1.0, "eval_loss": 2.0, "eval_f1": 0.3, "step": 4}]}
    log = parse_training_log(write(tmp_path / "s.json", json.dumps(state)))
    assert [event["type"] for event in log.events] == ["train", "eval"]
    assert log.events[0]["extra"] == {}
    assert log.events[1]["extra"] == {"eval_f1": 0.3}


def test_duplicate_steps_keep_the_last_row(tmp_path: Path) -> None:
    rows = [
        {"loss": 3.0, "step": 10},
        {"loss": 2.0, "step": 20},
        {"loss": 2.5, "step": 20},  # a resumed run logs step 20 again
        {"eval_loss": 9.0, "step": 20},
        {"eval_loss": 8.0, "step": 20},
        {"loss": 1.0, "step": 30},
    ]
    log = parse_training_log(write(tmp_path / "s.json", json.dumps({"log_history": rows})))
    assert [(e["type"], e["step"]) for e in log.events] == [
        ("train", 10),
        ("train", 20),
        ("eval", 20),
        ("train", 30),
    ]
    assert at(trains(log), 20)["loss"] == 2.5
    assert at(evals(log), 20)["val_loss"] == 8.0
    assert any("last row" in warning for warning in log.warnings)


def test_openai_results_csv_with_empty_validation_cells(tmp_path: Path) -> None:
    csv_text = (
        "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy,"
        "full_valid_loss,full_valid_mean_token_accuracy\r\n"
        "1,2.5,0.4,,,,\r\n"
        "2,2.1,0.45,2.3,0.5,,\r\n"
        "3,NaN,0.5,,,2.2,0.52\r\n"
    )
    log = parse_training_log(write(tmp_path / "step_metrics.csv", csv_text))
    assert log.format == "openai_results_csv"
    assert [(e["type"], e["step"]) for e in log.events] == [
        ("train", 1),
        ("train", 2),
        ("eval", 2),
        ("train", 3),
        ("eval", 3),
    ]
    assert trains(log)[0]["loss"] == 2.5
    assert trains(log)[0]["extra"] == {"train_accuracy": 0.4}
    assert math.isnan(trains(log)[2]["loss"])
    assert at(evals(log), 2)["val_loss"] == 2.3
    assert at(evals(log), 2)["val_token_accuracy"] == 0.5
    full = at(evals(log), 3)
    assert full["val_loss"] is None
    assert full["extra"] == {"full_valid_loss": 2.2, "full_valid_mean_token_accuracy": 0.52}
    assert log.completed is None and log.total_steps is None


def test_stdout_log_with_step_derived_from_logging_steps(tmp_path: Path) -> None:
    lines = [
        "TrainingArguments(logging_steps=10, logging_strategy=steps, num_train_epochs=2)",
        "***** Running training *****",
        "  Num Epochs = 2",
        "  Total optimization steps = 40",
        "{'loss': 2.0, 'grad_norm': 1.5, 'learning_rate': 0.0001, 'epoch': 0.5}",
        "\r 25%|##        | 10/40 [00:10<00:30]\r{'loss': '1.5', 'learning_rate': '5e-05', 'epoch': '1.0'}\r 50%|",
        "{'eval_loss': 1.4, 'eval_accuracy': 0.7, 'epoch': 1.0}",
        "{'loss': 1.2, 'learning_rate': 2e-05, 'epoch': 1.5}",
        "{'loss': 1.1, 'learning_rate': 0.0, 'epoch': 2.0}",
        "{'train_runtime': 40.0, 'train_loss': 1.45, 'epoch': 2.0}",
    ]
    log = parse_training_log(write(tmp_path / "train.log", "\r\n".join(lines)))
    assert log.format == "stdout_metrics"
    assert [(e["type"], e["step"]) for e in log.events] == [
        ("train", 10),
        ("train", 20),
        ("eval", 20),
        ("train", 30),
        ("train", 40),
    ]
    assert trains(log)[1]["loss"] == 1.5
    assert evals(log)[0]["extra"]["eval_accuracy"] == 0.7
    assert log.total_steps == 40 and log.completed is True
    assert log.summary["train_runtime"] == 40.0


def test_stdout_log_without_any_step_hint_uses_row_order(tmp_path: Path) -> None:
    text = (
        "Epoch 1\n{'loss': nan, 'grad_norm': inf, 'learning_rate': np.float64(1e-05)}\n"
        "{'loss': 1.0, 'learning_rate': 1e-05}\n{'eval_loss': 0.9}\n"
    )
    log = parse_training_log(write(tmp_path / "out.txt", text))
    assert [(e["type"], e["step"]) for e in log.events] == [
        ("train", 1),
        ("train", 2),
        ("eval", 2),
    ]
    assert math.isnan(log.events[0]["loss"]) and log.events[0]["grad_norm"] == math.inf
    assert log.events[0]["lr"] == 1e-05
    assert log.summary["steps_from"] == "row_order"
    assert log.completed is None
    assert any("order of the train rows" in warning for warning in log.warnings)


def test_stdout_json_lines_with_explicit_steps(tmp_path: Path) -> None:
    text = '{"loss": 1.0, "step": 7}\nnoise\n{"eval_loss": 2.0, "step": 7}\n{"loss": 0.5, "step": 14}\n'
    log = parse_training_log(write(tmp_path / "metrics.jsonl", text))
    assert log.format == "stdout_metrics"
    assert [(e["type"], e["step"]) for e in log.events] == [
        ("train", 7),
        ("eval", 7),
        ("train", 14),
    ]
    assert log.summary["steps_from"] == "explicit"


def test_llamafactory_skips_non_json_lines_and_reports_them(tmp_path: Path) -> None:
    text = (
        '{"current_steps": 10, "total_steps": 30, "loss": 2.0, "learning_rate": 1e-4}\n'
        "garbage line\n"
        '{"current_steps": 20, "total_steps": 30, "loss": 1.5, "learning_rate": 5e-5}\n'
        '{"current_steps": 30, "total_steps": 30, "lo'  # cut off mid-write
    )
    log = parse_training_log(write(tmp_path / "trainer_log.jsonl", text))
    assert log.format == "llamafactory_trainer_log"
    assert [event["step"] for event in log.events] == [10, 20]
    assert log.completed is False
    assert "2 lines were not JSON objects and were skipped" in log.warnings


def test_utf16_capture_from_powershell(tmp_path: Path) -> None:
    text = "{'loss': 1.0, 'epoch': 1.0}\r\n{'loss': 0.5, 'epoch': 2.0}\r\n"
    log = parse_training_log(write(tmp_path / "ps.log", text.encode("utf-16")))
    assert [event["loss"] for event in log.events] == [1.0, 0.5]


MALFORMED: dict[str, bytes] = {
    "empty.json": b"",
    "blank.log": b"\n \r\n\t\n",
    "binary.bin": bytes(range(256)) * 8,
    "random.log": bytes((i * 7919 + 13) % 256 for i in range(5000)),
    "list.json": b"[1, 2, 3]",
    "other_shape.json": b'{"model_type": "llama", "hidden_size": 4096}',
    "truncated_state.json": b'{\n  "best_metric": null,\n  "log_history": [\n    {\n      "loss": 1.2,',
    "truncated_head.json": b'{\n  "best_global_step": null,\n  "epo',
    "bom_truncated.json": b'\xef\xbb\xbf{\n  "log_history": [',
    "no_step_column.csv": b"epoch,loss,accuracy\n1,2.0,0.5\n",
    "step_without_loss.csv": b"step,loss\n1,2.0\n",
    "csv_header_only.csv": b"step,train_loss,train_accuracy\n",
    "no_metrics.log": b"Loading model...\nconfig = {'hidden_size': 4096}\nDone.\n",
    "chat_rows.jsonl": b'{"messages": []}\n{"messages": []}\n',
    "empty_history.json": b'{"log_history": [], "max_steps": 10}',
    "history_not_list.json": b'{"log_history": {"loss": 1.0}}',
    "history_no_metrics.json": b'{"log_history": [{"step": 1, "epoch": 0.1}, "x", 3]}',
    "llamafactory_no_loss.jsonl": b'{"current_steps": 5, "total_steps": 5, "loss": null}\n',
    "deep_nesting.json": b"[" * 50000,
    "deep_nesting.log": b"{'loss': " + b"[" * 50000 + b"}",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_input_is_an_input_error_naming_the_file(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, MALFORMED[name])
    with pytest.raises(InputError) as caught:
        parse_training_log(path)
    assert name in caught.value.message
    assert "expected" in caught.value.message.lower()


def test_missing_file_and_directory_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        parse_training_log(tmp_path / "nope.json")
    with pytest.raises(InputError, match="is a directory"):
        parse_training_log(tmp_path)


def test_truncated_trainer_state_says_so(tmp_path: Path) -> None:
    path = write(tmp_path / "trainer_state.json", MALFORMED["truncated_state.json"])
    with pytest.raises(InputError, match="cut short"):
        parse_training_log(path)


# -- run directories ---------------------------------------------------------------------------

STATE = {
    "log_history": [
        {"loss": 2.0, "learning_rate": 1e-4, "grad_norm": float("nan"), "epoch": 0.5, "step": 5},
        {"eval_loss": 1.9, "eval_mean_token_accuracy": 0.6, "epoch": 0.5, "step": 5},
        {"loss": 1.5, "learning_rate": 5e-5, "epoch": 1.0, "step": 10},
    ],
    "max_steps": 20,
    "global_step": 10,
    "best_metric": 1.9,
}


def test_create_imported_run_writes_a_readable_run_dir(tmp_path: Path) -> None:
    source = write(tmp_path / "my_sft_state.json", json.dumps(STATE, indent=2))
    runs = tmp_path / "runs"
    paths = create_imported_run(runs, source)
    assert paths.root.parent == runs and paths.root.is_dir()
    assert [entry.name for entry in runs.iterdir()] == [paths.run_id]
    assert paths.run_id.endswith("-my_sft_state")
    assert rundir.list_run_dirs(runs) == [paths]

    run = rundir.read_json(paths.run_json)
    assert run is not None
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert run["run_id"] == paths.run_id and run["name"] == "my_sft_state"
    assert run["source"] == "hf_trainer_state"
    assert run["imported_from"] == str(source.resolve())
    assert run["source_sha256"] == digest
    assert run["config"] == {}
    assert run["lineage"] == {
        "imported_from": str(source.resolve()),
        "source_sha256": digest,
        "format": "hf_trainer_state",
    }
    assert run["summary"]["best_metric"] == 1.9
    assert isinstance(run["created_at"], float)
    assert (paths.root / "source" / source.name).read_bytes() == source.read_bytes()

    records = list(rundir.iter_records(paths.events))
    assert records[0] == {
        "type": "start",
        "time": None,
        "step": 0,
        "total_steps": 20,
        "attempt": 1,
        "resumed_from": None,
    }
    assert [(r["type"], r["step"]) for r in records[1:]] == [
        ("train", 5),
        ("eval", 5),
        ("train", 10),
    ]
    assert math.isnan(records[1]["grad_norm"])
    assert records[2]["val_token_accuracy"] == 0.6

    status = rundir.read_status(paths)
    assert status is not None
    assert status.state == "interrupted"
    assert status.step == 10 and status.total_steps == 20
    assert status.message == (
        "imported from my_sft_state.json (hf_trainer_state); the log ends at step 10 of 20"
    )


def test_create_imported_run_marks_finished_logs_succeeded(tmp_path: Path) -> None:
    state = dict(STATE, global_step=20, max_steps=20, best_metric=None)
    source = write(tmp_path / "trainer_state.json", json.dumps(state))
    paths = create_imported_run(tmp_path / "runs", source, name="given name")
    status = rundir.read_status(paths)
    assert status is not None and status.state == "succeeded"
    assert status.message == "imported from trainer_state.json (hf_trainer_state)"
    run = rundir.read_json(paths.run_json)
    assert run is not None and run["name"] == "given name"
    assert paths.run_id.endswith("-given-name")


def test_create_imported_run_from_a_real_file(tmp_path: Path) -> None:
    name = "stdout__hf_seq2seq_trainer_cpt__numeric_dict_lines_crlf.txt"
    if not (FIXTURES / name).is_file():
        pytest.skip("fixture not on this machine")
    paths = create_imported_run(tmp_path / "runs", FIXTURES / name)
    status = rundir.read_status(paths)
    assert status is not None
    assert (status.state, status.step, status.total_steps) == ("succeeded", 5000, 5490)
    copy = paths.root / "source" / name
    assert copy.read_bytes() == (FIXTURES / name).read_bytes()  # CRLF and all
    assert len(list(rundir.iter_records(paths.events))) == 21


def test_unknown_completion_says_so(tmp_path: Path) -> None:
    source = write(tmp_path / "results.csv", "step,train_loss\n1,2.0\n2,1.5\n")
    paths = create_imported_run(tmp_path / "runs", source)
    status = rundir.read_status(paths)
    assert status is not None and status.state == "interrupted"
    assert status.message is not None
    assert "ends at step 2 and does not show whether the run finished" in status.message


def test_failed_import_leaves_no_half_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write(tmp_path / "trainer_state.json", json.dumps(STATE))
    runs = tmp_path / "runs"

    def broken(paths: rundir.RunPaths, status: rundir.RunStatus) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(rundir, "write_status", broken)
    with pytest.raises(OSError, match="disk full"):
        create_imported_run(runs, source)
    assert list(runs.iterdir()) == []


def test_unusable_source_creates_nothing(tmp_path: Path) -> None:
    source = write(tmp_path / "bad.json", b'{\n  "log_history": [')
    runs = tmp_path / "runs"
    with pytest.raises(InputError):
        create_imported_run(runs, source)
    assert not runs.exists() or list(runs.iterdir()) == []


def test_importers_load_without_textual_rich_or_torch() -> None:
    probe = (
        "import sys, core.runs.imports\n"
        "print(','.join(m for m in ('textual', 'rich', 'torch') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == ""


def test_printed_config_dicts_are_not_metric_rows(tmp_path: Path) -> None:
    text = (
        "hyperparameters: {'learning_rate': 2e-05, 'eval_steps': 500, 'num_train_epochs': 3}\n"
        "{'step': 0, 'agent_id': 'market_maker', 'loss': 'n/a', 'strike': 'N/A'} of type {...}\n"
        "{'loss': 1.25, 'learning_rate': 2e-05, 'epoch': 1.0}\n"
    )
    log = parse_training_log(write(tmp_path / "run.log", text))
    assert [(e["type"], e["loss"]) for e in log.events] == [("train", 1.25)]


# -- the registry of formats -------------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda path: path.name[:70])
def test_every_real_log_is_detected_as_its_format_from_the_content(
    path: Path, tmp_path: Path
) -> None:
    from core.runs.importers.registry import detect_format

    # The collected files are named <format>__<source>__<what is special>; console
    # captures are named by what they are, stdout.
    prefix = path.name.split("__", 1)[0]
    expected = {"stdout": "stdout_metrics"}.get(prefix, prefix)
    assert expected in imports.FORMATS
    assert imports.detect_format(path) == expected
    # The name is only a hint: the same bytes under a neutral name are the same format.
    neutral = write(tmp_path / "log", path.read_bytes())
    assert detect_format(neutral) == expected
    assert parse_training_log(neutral).format == expected


def test_the_registry_lists_each_format_once_in_the_order_ties_are_broken() -> None:
    from core.runs.importers.registry import IMPORTERS

    assert tuple(importer.name for importer in IMPORTERS) == imports.FORMATS
    assert len(set(imports.FORMATS)) == len(imports.FORMATS)
    for importer in IMPORTERS:
        assert importer.expects in imports.EXPECTED


def test_a_state_that_also_has_current_steps_is_a_trainer_state(tmp_path: Path) -> None:
    state = {"log_history": [{"loss": 1.0, "step": 5}], "current_steps": 5, "max_steps": 5}
    source = write(tmp_path / "mixed.json", json.dumps(state))
    assert imports.detect_format(source) == "hf_trainer_state"
    assert parse_training_log(source).format == "hf_trainer_state"


def test_a_csv_without_the_columns_is_refused_as_a_csv_not_read_as_stdout(
    tmp_path: Path,
) -> None:
    source = write(tmp_path / "metrics.csv", "epoch,accuracy\n1,0.5\n2,0.6\n")
    assert imports.detect_format(source) == "openai_results_csv"
    with pytest.raises(InputError, match="without a step column"):
        parse_training_log(source)
