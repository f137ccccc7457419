"""Training runs end to end on the CPU: real trainer processes on a tiny Llama.

Each test launches `python -m core.train` detached, exactly as `ftod train` does, and
observes it only through the run directory and the store.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from core.datasets import add_dataset, split_dataset
from core.runs.config import RunConfig, load_run_config, parse_run_config
from core.runs.ingest import ingest_runs
from core.runs.launch import cancel_run, find_run, prepare_run, resume_run, start_trainer
from core.runs.monitor import read_run
from core.runs.rundir import RunPaths, iter_records, observed_status, read_status
from store.datasets import DatasetRepository
from store.db import Store
from store.errors import InputError, NotFoundError
from store.runs import RunRepository
from tests.conftest import clean_rows, write_jsonl
from tui.cli import main

RUN_TIMEOUT_S = 180.0


def training_rows(copies: int = 4) -> list[dict[str, Any]]:
    rows = []
    for copy in range(copies):
        for row in clean_rows():
            messages = [
                dict(m, content=f"{m['content']} (case {copy})") if m["role"] != "system" else m
                for m in row["messages"]
            ]
            rows.append(dict(row, messages=messages))
    return rows


@pytest.fixture
def train_repository(workspace: Any, repository: DatasetRepository, tmp_path: Path) -> Any:
    source = write_jsonl(tmp_path / "support.jsonl", training_rows())
    add_dataset(workspace, repository, source, "support")
    split_dataset(repository, "support@1", val=0.2, test=0.0, seed=0)
    return repository


def tiny_config(model: Path, **train: Any) -> RunConfig:
    settings = {
        "max_steps": 6,
        "batch_size": 2,
        "max_seq_len": 256,
        "eval_every": 3,
        "save_every": 3,
        "lr": 1e-3,
        **train,
    }
    return parse_run_config(
        {"name": "tiny", "base_model": str(model), "dataset": "support@1", "train": settings}
    )


def launch(workspace: Any, repository: DatasetRepository, config: RunConfig) -> RunPaths:
    prepared = prepare_run(workspace, repository, config)
    start_trainer(prepared.paths)
    return prepared.paths


def wait_until(
    predicate: Callable[[], bool], timeout: float = RUN_TIMEOUT_S, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_final(paths: RunPaths) -> str:
    def final() -> bool:
        status = observed_status(paths)
        return status is not None and status.is_final

    wait_until(final, what=f"{paths.run_id} to end; log:\n{_log(paths)}")
    status = read_status(paths)
    assert status is not None
    return status.state


def _log(paths: RunPaths) -> str:
    return paths.log.read_text(errors="replace")[-3000:] if paths.log.exists() else "(no log)"


def train_steps(paths: RunPaths) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in iter_records(paths.events) if r.get("type") == "train"}


def logged_step_count(paths: RunPaths) -> int:
    return len(train_steps(paths))


# -- config ------------------------------------------------------------------------------
def test_config_defaults_and_yaml_round_trip(tmp_path: Path) -> None:
    config = parse_run_config({"base_model": "m", "dataset": "d@1"}, default_name="x")
    assert config.name == "x"
    assert config.lora.target_modules == "all-linear"
    assert config.train.packing is True
    assert (config.train_split, config.val_split) == ("train", "val")
    path = tmp_path / "run.yaml"
    path.write_text(config.as_yaml())
    assert load_run_config(path) == config
    assert load_run_config(path).config_hash() == config.config_hash()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"dataset": "d@1"}, "base_model: required"),
        ({"base_model": "m"}, "dataset: required"),
        ({"base_model": "m", "dataset": "d", "lora": {"rank": 8}}, "lora.rank: unknown key"),
        ({"base_model": "m", "dataset": "d", "train": {"lr": "fast"}}, "train.lr"),
        ({"base_model": "m", "dataset": "d", "train": {"lr": -1}}, "train.lr: must be > 0"),
        ({"base_model": "m", "dataset": "d", "train": {"scheduler": "step"}}, "train.scheduler"),
        ({"base_model": "m", "dataset": "d", "train": {"batch_size": 1.5}}, "whole number"),
        ({"base_model": "m", "dataset": "d", "lora": {"target_modules": 3}}, "target_modules"),
        (
            {
                "base_model": "m",
                "dataset": "d",
                "splits": {"val": None},
                "train": {"early_stopping_patience": 2},
            },
            "needs a validation split",
        ),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_configs_name_the_field(raw: Any, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_run_config(raw)
    assert message in caught.value.message


def test_config_reads_exponent_learning_rates_and_null_splits() -> None:
    config = parse_run_config(
        {
            "base_model": "m",
            "dataset": "d",
            "splits": {"train": None, "val": None},
            "train": {"lr": "2e-4"},
        }
    )
    assert config.train.lr == pytest.approx(2e-4)
    assert config.train_split is None and config.val_split is None


def test_tokens_per_step_sets_grad_accum() -> None:
    config = parse_run_config(
        {
            "base_model": "m",
            "dataset": "d",
            "train": {"batch_size": 2, "max_seq_len": 1024, "tokens_per_step": 8192},
        }
    )
    assert config.effective_grad_accum == 4


# -- validation before launch -------------------------------------------------------------
def test_validation_names_each_problem_with_its_fix(
    workspace: Any, train_repository: DatasetRepository, tiny_model_dir: Path, tmp_path: Path
) -> None:
    def problem(config: RunConfig) -> str:
        with pytest.raises((InputError, NotFoundError)) as caught:
            prepare_run(workspace, train_repository, config)
        return caught.value.message

    good = tiny_config(tiny_model_dir)
    assert "no such folder" in problem(
        RunConfig(**{**_fields(good), "base_model": str(tmp_path / "nope")})
    )
    assert "--allow-download" in problem(
        RunConfig(**{**_fields(good), "base_model": "acme/not-cached"})
    )
    bad_target = parse_run_config(
        {
            "base_model": str(tiny_model_dir),
            "dataset": "support@1",
            "lora": {"target_modules": ["q_proj", "qkv"]},
            "train": {"max_seq_len": 256},
        }
    )
    message = problem(bad_target)
    assert "qkv" in message and "q_proj" in message and "down_proj" in message
    too_long = tiny_config(tiny_model_dir, max_seq_len=4096)
    assert "context of 512" in problem(too_long)
    assert "see `ftod data list`" in problem(RunConfig(**{**_fields(good), "dataset": "nothing@1"}))
    assert "split 'holdout'" in problem(RunConfig(**{**_fields(good), "val_split": "holdout"}))
    qlora = parse_run_config(
        {
            "base_model": str(tiny_model_dir),
            "dataset": "support@1",
            "qlora": True,
            "train": {"max_seq_len": 256},
        }
    )
    assert "needs a CUDA GPU" in problem(qlora)
    assert not any(workspace.runs_dir.iterdir()), "a refused launch leaves no run directory"


def test_dataset_without_splits_says_how_to_split(
    workspace: Any, repository: DatasetRepository, tiny_model_dir: Path, tmp_path: Path
) -> None:
    add_dataset(workspace, repository, write_jsonl(tmp_path / "d.jsonl", training_rows(1)), "raw")
    config = parse_run_config({"base_model": str(tiny_model_dir), "dataset": "raw@1"})
    with pytest.raises(NotFoundError, match="ftod data split raw@1"):
        prepare_run(workspace, repository, config)


def _fields(config: RunConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


# -- real runs -----------------------------------------------------------------------------
def test_launch_trains_ingests_and_leaves_a_loadable_adapter(
    workspace: Any, train_repository: DatasetRepository, tiny_model_dir: Path
) -> None:
    paths = launch(workspace, train_repository, tiny_config(tiny_model_dir))
    assert wait_final(paths) == "succeeded", _log(paths)

    events = list(iter_records(paths.events))
    train = [e for e in events if e["type"] == "train"]
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in train] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(e["loss"]) and e["grad_norm"] > 0 for e in train)
    assert all(e["tokens"] > 0 and e["tokens_per_s"] > 0 and e["lr"] > 0 for e in train)
    assert [e["step"] for e in evals] == [3, 6]
    assert 0 <= evals[-1]["val_token_accuracy"] <= 1
    assert events[-1]["type"] == "end" and events[-1]["state"] == "succeeded"

    run = json.loads(paths.run_json.read_text())
    lineage = {**run["lineage"], **json.loads(paths.lineage_json.read_text())}
    for key in (
        "dataset_sha256",
        "split_hashes",
        "config_hash",
        "ftod_version",
        "seed",
        "base_model_weights_sha256",
        "torch",
        "transformers",
        "peft",
        "host",
        "git_commit",
        "git_dirty",
        "gpu_name",
    ):
        assert key in lineage, key
    manifest = json.loads((paths.data_dir / "manifest.json").read_text())
    assert manifest["train"]["rows"] > manifest["val"]["rows"] > 0

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    adapted = PeftModel.from_pretrained(base, str(paths.adapter))
    assert any("lora_A" in name for name, _ in adapted.named_parameters())

    runs = RunRepository(Store.open(workspace))
    first = ingest_runs(workspace, runs)
    again = ingest_runs(workspace, runs)
    assert first.metrics_added == 8 and again.metrics_added == 0 and again.runs_updated == 0
    record = runs.run(paths.run_id)
    assert record.state == "succeeded" and record.step == 6
    assert record.best_val_loss == pytest.approx(min(e["val_loss"] for e in evals))
    assert runs.metric_count(paths.run_id) == {"train": 6, "eval": 2}


def test_cli_train_follows_to_the_end_and_runs_show_reports_it(
    workspace: Any, train_repository: DatasetRepository, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config_path = tmp_path / "run.yaml"
    config_path.write_text(tiny_config(tiny_model_dir, max_steps=3).as_yaml())
    runner = CliRunner()
    root = str(workspace.root)
    result = runner.invoke(main, ["--workspace", root, "train", str(config_path)])
    assert result.exit_code == 0, result.output
    run_id = result.output.splitlines()[0]
    shown = runner.invoke(main, ["--workspace", root, "runs", "show", run_id, "--json"])
    payload = json.loads(shown.output)
    assert payload["id"] == run_id and payload["state"] == "succeeded"
    assert payload["step"] == payload["total_steps"] == 3
    assert payload["reason"] is None and payload["pid"] > 0
    assert isinstance(payload["loss"], float) and isinstance(payload["val_loss"], float)
    assert Path(payload["run_dir"]).is_dir()
    listed = json.loads(runner.invoke(main, ["--workspace", root, "runs", "list", "--json"]).output)
    assert [r["id"] for r in listed] == [run_id]
    logs = json.loads(
        runner.invoke(main, ["--workspace", root, "runs", "logs", run_id, "--json"]).output
    )
    assert logs["id"] == run_id


def test_kill_9_leaves_an_interrupted_run_with_every_logged_step(
    workspace: Any, train_repository: DatasetRepository, tiny_model_dir: Path
) -> None:
    paths = launch(
        workspace, train_repository, tiny_config(tiny_model_dir, max_steps=5000, save_every=1000)
    )
    wait_until(lambda: logged_step_count(paths) >= 3, what="three logged steps")
    status = read_status(paths)
    assert status is not None and status.pid is not None
    pid = status.pid
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not _alive(pid), timeout=10, what="the trainer to die")
    logged = logged_step_count(paths)
    looked = time.monotonic()
    observed = observed_status(paths)
    assert observed is not None and observed.state == "interrupted"
    assert time.monotonic() - looked < 5
    assert "resume" in (observed.message or "")
    assert read_run(paths).logged_steps == logged >= 3
    runs = RunRepository(Store.open(workspace))
    ingest_runs(workspace, runs)
    assert runs.run(paths.run_id).state == "interrupted"
    assert runs.metric_count(paths.run_id)["train"] == logged


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0) until its parent reaps it.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_cancel_checkpoints_then_resume_matches_an_uninterrupted_run(
    workspace: Any, train_repository: DatasetRepository, tiny_model_dir: Path
) -> None:
    settings = {"max_steps": 24, "save_every": 1000, "eval_every": 1000}
    reference = launch(workspace, train_repository, tiny_config(tiny_model_dir, **settings))
    assert wait_final(reference) == "succeeded", _log(reference)
    expected = train_steps(reference)

    paths = launch(workspace, train_repository, tiny_config(tiny_model_dir, **settings))
    wait_until(lambda: logged_step_count(paths) >= 2, what="two logged steps")
    cancelled = cancel_run(paths, grace_seconds=60)
    assert cancelled.state == "cancelled", _log(paths)
    checkpoint = paths.latest_checkpoint()
    assert checkpoint is not None, "cancel saves a checkpoint"
    stopped_at = checkpoint[0]
    assert stopped_at < 24, "cancelled before the end"

    resume_run(paths)
    assert wait_final(paths) == "succeeded", _log(paths)
    resumed = train_steps(paths)
    assert sorted(resumed) == list(range(1, 25))
    for step in range(stopped_at + 1, 25):
        assert resumed[step] == pytest.approx(expected[step], rel=1e-4, abs=1e-5), step
    starts = [r for r in iter_records(paths.events) if r["type"] == "start"]
    assert [s["resumed_from"] for s in starts] == [None, stopped_at]
    assert read_run(paths).logged_steps == 24


def test_huge_learning_rate_fails_with_nan_loss(
    workspace: Any, train_repository: DatasetRepository, tiny_model_dir: Path
) -> None:
    config = tiny_config(
        tiny_model_dir, max_steps=40, lr=1e6, max_grad_norm=0, warmup=0, scheduler="constant"
    )
    paths = launch(workspace, train_repository, config)
    assert wait_final(paths) == "failed", _log(paths)
    status = read_status(paths)
    assert status is not None and status.reason == "nan_loss"
    assert "lower the learning rate" in (status.message or "")
    losses = train_steps(paths)
    assert any(not math.isfinite(loss) for loss in losses.values()), "the NaN step is logged"


def test_broken_training_data_fails_with_data_error(
    workspace: Any, train_repository: DatasetRepository, tiny_model_dir: Path
) -> None:
    prepared = prepare_run(workspace, train_repository, tiny_config(tiny_model_dir))
    (prepared.paths.data_dir / "train.jsonl").write_text('{"messages": [}\n')
    start_trainer(prepared.paths)
    assert wait_final(prepared.paths) == "failed"
    status = read_status(prepared.paths)
    assert status is not None and status.reason == "data_error", status


def test_find_run_by_id_prefix_and_name(
    workspace: Any, train_repository: DatasetRepository, tiny_model_dir: Path
) -> None:
    prepared = prepare_run(workspace, train_repository, tiny_config(tiny_model_dir))
    run_id = prepared.paths.run_id
    assert find_run(workspace, run_id) == prepared.paths
    assert find_run(workspace, run_id[:15]) == prepared.paths
    assert find_run(workspace, "tiny") == prepared.paths
    with pytest.raises(NotFoundError):
        find_run(workspace, "no-such-run")
    cancelled = cancel_run(prepared.paths)
    assert cancelled.state == "cancelled"


def test_yaml_config_file_written_in_run_dir_reads_back(
    workspace: Any, train_repository: DatasetRepository, tiny_model_dir: Path
) -> None:
    prepared = prepare_run(workspace, train_repository, tiny_config(tiny_model_dir))
    saved = yaml.safe_load((prepared.paths.root / "config.yaml").read_text())
    assert saved["base_model"] == str(tiny_model_dir.resolve())
    assert saved["splits"] == {"train": "train", "val": "val"}


def test_a_trainer_that_dies_at_start_up_fails_with_its_last_words(
    workspace: Any, train_repository: DatasetRepository, tiny_model_dir: Path, tmp_path: Path
) -> None:
    prepared = prepare_run(workspace, train_repository, tiny_config(tiny_model_dir))
    broken_python = tmp_path / "python"
    broken_python.write_text("#!/bin/sh\necho 'ImportError: no module named torch' >&2\nexit 1\n")
    broken_python.chmod(0o755)
    start_trainer(prepared.paths, python=str(broken_python))
    assert wait_final(prepared.paths) == "failed"
    status = read_status(prepared.paths)
    assert status is not None and status.reason == "error"
    assert "exited before it started: ImportError: no module named torch" in (status.message or "")
