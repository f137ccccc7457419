"""The recorded LoRA run in sample_runs/ is whole, and `ftod demo` installs it usably.

The run and its base model are committed outputs of sample_runs/make_recorded_run.py;
these tests read them as the demo does, without training anything.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.gpu import record_to_snapshot
from core.runs.config import load_run_config
from core.runs.rundir import RunPaths, iter_records, list_run_dirs, read_json, read_status
from core.runs.validate import validate_data, validate_model
from store.datasets import DatasetRepository
from store.db import Store
from store.runs import RunRepository
from tui.demo import BASE_MODEL, RECORDED_RUNS, REPO_ROOT, RUN_CONFIG_NAME, build_demo_workspace

# An absolute path on POSIX or Windows (a drive, or a UNC share).
ABSOLUTE = re.compile(r"^(/|[A-Za-z]:[\\/]|\\\\)")


def absolute_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if ABSOLUTE.match(value) else []
    if isinstance(value, dict):
        return [found for item in value.values() for found in absolute_strings(item)]
    if isinstance(value, list):
        return [found for item in value for found in absolute_strings(item)]
    return []


def recorded_run() -> RunPaths:
    runs = list_run_dirs(RECORDED_RUNS)
    assert len(runs) == 1, f"expected one recorded run in {RECORDED_RUNS}, found {runs}"
    return runs[0]


def events(paths: RunPaths, kind: str) -> list[dict[str, Any]]:
    return [record for record in iter_records(paths.events) if record.get("type") == kind]


def test_recorded_run_finished_with_a_falling_loss_curve() -> None:
    paths = recorded_run()
    status = read_status(paths)
    assert status is not None and status.state == "succeeded"
    train = events(paths, "train")
    evals = events(paths, "eval")
    assert len(train) >= 50
    assert len(evals) >= 3
    assert status.step == train[-1]["step"] == status.total_steps
    losses = [record["loss"] for record in train]
    quarter = len(losses) // 4
    first = sum(losses[:quarter]) / quarter
    last = sum(losses[-quarter:]) / quarter
    assert last < first, f"loss did not fall: first quarter {first:.3f}, last {last:.3f}"
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]


def test_recorded_run_has_system_samples_and_the_committed_layout() -> None:
    paths = recorded_run()
    lines = paths.system.read_text(encoding="utf-8").splitlines()
    assert lines
    for line in lines:
        assert record_to_snapshot(json.loads(line)) is not None
    for required in (paths.run_json, paths.lineage_json, paths.log, paths.root / "config.yaml"):
        assert required.is_file(), required
    assert (paths.data_dir / "manifest.json").is_file()
    # The dataset is in the repository; the run's exports and checkpoints are not.
    assert not list(paths.data_dir.glob("*.jsonl"))
    assert not paths.checkpoints.exists()
    size = sum(p.stat().st_size for p in paths.root.rglob("*") if p.is_file())
    assert size < 3 * 1024 * 1024


def test_recorded_run_records_no_machine_paths() -> None:
    paths = recorded_run()
    documents = {
        "run.json": read_json(paths.run_json),
        "lineage.json": read_json(paths.lineage_json),
        "status.json": read_json(paths.status_json),
        "adapter_config.json": read_json(paths.adapter / "adapter_config.json"),
        "config.yaml": yaml.safe_load((paths.root / "config.yaml").read_text(encoding="utf-8")),
        "events.jsonl": list(iter_records(paths.events)),
    }
    for name, document in documents.items():
        assert document, name
        assert absolute_strings(document) == [], name
    run = documents["run.json"]
    assert run["config"]["base_model"] == "sample_runs/base_model"
    assert run["lineage"]["base_model_path"] == "sample_runs/base_model"
    assert run["lineage"]["launch_cwd"] == "."


def test_base_model_is_small_and_documented() -> None:
    size = sum(p.stat().st_size for p in BASE_MODEL.rglob("*") if p.is_file())
    assert size < 8 * 1024 * 1024
    assert (BASE_MODEL / "TRAINING.md").is_file()
    assert list(BASE_MODEL.glob("*.safetensors"))


def test_recorded_adapter_loads_onto_the_base_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    paths = recorded_run()
    base = AutoModelForCausalLM.from_pretrained(str(BASE_MODEL), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(BASE_MODEL), local_files_only=True)
    model = PeftModel.from_pretrained(base, str(paths.adapter), local_files_only=True)
    model.eval()
    prompt = str(
        tokenizer.apply_chat_template(
            [{"role": "user", "content": "Where is my order?"}],
            add_generation_prompt=True,
            tokenize=False,
        )
    )
    assert prompt.endswith("<|assistant|>")
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert torch.isfinite(logits).all()
    # LoRA's B matrices start at zero: a trained adapter has moved them.
    moved = [
        float(param.abs().max()) for name, param in model.named_parameters() if "lora_B" in name
    ]
    assert moved and max(moved) > 0


def test_demo_workspace_installs_the_run_and_a_launchable_config(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    said: list[str] = []
    build_demo_workspace(folder, log=said.append)
    workspace = build_demo_workspace(folder, log=said.append)
    recorded = recorded_run()

    runs = RunRepository(Store.open(workspace)).list_runs()
    assert [run.run_id for run in runs] == [recorded.run_id]
    assert runs[0].state == "succeeded"
    installed = RunPaths(workspace.runs_dir / recorded.run_id)
    run = read_json(installed.run_json)
    assert run is not None
    base_path = Path(run["lineage"]["base_model_path"])
    assert base_path.is_absolute() and base_path == BASE_MODEL
    assert Path(run["lineage"]["launch_cwd"]) == REPO_ROOT
    adapter_config = read_json(installed.adapter / "adapter_config.json")
    assert adapter_config is not None
    assert Path(adapter_config["base_model_name_or_path"]) == BASE_MODEL
    assert any("ftod train support-lora.yaml" in line for line in said)

    config = load_run_config(folder / RUN_CONFIG_NAME)
    assert Path(config.base_model) == BASE_MODEL
    assert config.dataset == "support-tickets@1"
    model = validate_model(config, allow_download=False)
    assert model.path == BASE_MODEL
    data = validate_data(config, DatasetRepository(Store.open(workspace)))
    assert data.split is not None
    # The demo's dataset and split are rebuilt byte for byte: the recorded run's lineage
    # names the very version and split the user's own run will train on.
    assert data.version.sha256 == run["lineage"]["dataset_sha256"]
    assert data.split.manifest["splits"]["val"]["sha256"] == run["lineage"]["split_hashes"]["val"]


def test_demo_workspace_holds_the_recorded_eval_its_gate_and_a_review_queue(
    tmp_path: Path,
) -> None:
    from core.evals.review import build_queue
    from store.evals import EvalRepository

    folder = tmp_path / "demo"
    said: list[str] = []
    build_demo_workspace(folder, log=said.append)
    workspace = build_demo_workspace(folder, log=said.append)  # idempotent
    evals = EvalRepository(Store.open(workspace))
    assert sorted(evals.labels()) == ["demo-base", "demo-candidate"]
    candidate = evals.eval_by_ref("demo-candidate")
    assert candidate.rows == 80 and candidate.adapter == "support-lora"
    gates = evals.gate_results(candidate.eval_id)
    assert len(gates) == 1, "the gate runs once, not on every rebuild"
    queue = build_queue(
        evals, "demo-base", "demo-candidate", "rouge_l", queue_filter="disagreements"
    )
    assert len(queue) > 10, "real disagreements to review"
    assert any("ftod review" in line for line in said)


def test_demo_holds_the_recorded_judge_run_once(tmp_path: Path) -> None:
    from store.evals import EvalRepository
    from store.judges import JudgeRepository

    folder = tmp_path / "demo"
    said: list[str] = []
    build_demo_workspace(folder, log=said.append)
    workspace = build_demo_workspace(folder, log=said.append)  # idempotent
    store = Store.open(workspace)
    evals, judges = EvalRepository(store), JudgeRepository(store)
    base, candidate = evals.eval_by_ref("demo-base"), evals.eval_by_ref("demo-candidate")
    (run,) = judges.runs(base.eval_id, candidate.eval_id)
    assert run.examples == 80 and Path(run.settings["judge_model_path"]).is_dir()
    verdicts = judges.verdicts(run.judge_id)
    assert sorted(v.line for v in verdicts) == [o.line for o in evals.outputs(base.eval_id)]
    inconsistent = sum(1 for v in verdicts if v.verdict == "inconsistent")
    assert any(f"{inconsistent} of 80 verdicts flip" in line for line in said)
