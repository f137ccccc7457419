"""Cost and break-even: FLOPs, NVML energy, the money arithmetic, and `ftod cost` on the demo."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from core.decide.cost import (
    EU_UNKNOWN_ORIGINAL_THRESHOLD_FLOPS,
    OPTION_CACHING,
    OPTION_FINE_TUNED,
    OPTION_LONG_PROMPT,
    CostAssumptions,
    Money,
    PromptSide,
    break_even_days,
    cost_report,
    energy_from_samples,
    inference_table,
    read_system_samples,
    run_flops,
)
from core.gpu import probe_gpus, record_to_snapshot, snapshot_to_record
from core.settings import WorkspaceSettings, load_settings
from store.db import Store
from store.errors import InputError
from store.evals import EvalRepository
from store.runs import RunRecord, RunRepository
from tests.test_gpu import FakeNotSupported, fake_nvml
from tui.demo import REPO_ROOT, build_demo_workspace

# -- FLOPs -----------------------------------------------------------------------------


def _run_record(base: Path, run_dir: Path, *, rank: int, max_seq_len: int) -> RunRecord:
    return RunRecord(
        run_id="r1",
        name="tiny",
        source="ftod",
        run_dir=str(run_dir),
        created_at=None,
        state="succeeded",
        reason=None,
        message=None,
        pid=None,
        step=None,
        total_steps=None,
        started_at=None,
        ended_at=None,
        heartbeat=None,
        dataset=None,
        base_model=str(base),
        config={
            "lora": {"r": rank, "target_modules": "all-linear"},
            "train": {"max_seq_len": max_seq_len},
        },
        lineage={},
        loss=None,
        val_loss=None,
        best_val_loss=None,
        best_val_step=None,
        tokens_per_s=None,
    )


def test_flops_of_the_tiny_llama_match_a_hand_computation(
    tiny_model_dir: Path, tmp_path: Path, workspace: Any
) -> None:
    vocab = json.loads((tiny_model_dir / "config.json").read_text())["vocab_size"]
    # conftest's tiny Llama: hidden 32, intermediate 64, 2 layers, 4 heads of 8, 2 KV heads,
    # an untied output head (its input embedding is a lookup and costs no multiply-adds).
    per_layer = 32 * 32 + 32 * 16 + 32 * 16 + 32 * 32 + 3 * 32 * 64 + 2 * 32
    frozen = 2 * per_layer + 32 + vocab * 32
    # r=4 on every linear: r·(in + out) each.
    lora_per_layer = 4 * ((32 + 32) + (32 + 16) + (32 + 16) + (32 + 32) + 3 * (32 + 64))
    lora = 2 * lora_per_layer
    attention = 6 * 2 * 128 * 32  # 6 · n_layer · n_ctx · d_attn
    tokens = 10_000

    assumptions = CostAssumptions.resolve(WorkspaceSettings())
    record = _run_record(tiny_model_dir, tmp_path / "no-adapter", rank=4, max_seq_len=128)
    flops = run_flops(workspace, record, tokens, assumptions)

    assert flops.frozen_parameters == frozen
    assert flops.lora_parameters == lora
    assert flops.lora_source is not None and "LoRA config" in flops.lora_source
    assert flops.attention_per_token == attention
    assert flops.per_token == 4 * frozen + 6 * lora + attention
    assert flops.total == (4 * frozen + 6 * lora + attention) * tokens
    eu = flops.as_json()["eu_ai_act"]
    assert eu["threshold_flops"] == EU_UNKNOWN_ORIGINAL_THRESHOLD_FLOPS
    assert eu["status"] == "below"

    # A modification with as much compute as the original is three times the third.
    assert flops.total is not None
    known = CostAssumptions.resolve(WorkspaceSettings(), {"original_training_flops": flops.total})
    against_original = run_flops(workspace, record, tokens, known)
    assert against_original.eu_threshold == pytest.approx(flops.total / 3)
    assert against_original.eu_share == pytest.approx(3.0)
    assert against_original.as_json()["eu_ai_act"]["status"] == "above"


def test_flops_without_the_base_model_say_why(tmp_path: Path, workspace: Any) -> None:
    record = _run_record(tmp_path / "gone", tmp_path, rank=4, max_seq_len=128)
    flops = run_flops(workspace, record, 100, CostAssumptions.resolve(WorkspaceSettings()))
    assert flops.total is None
    assert flops.reason is not None and "not on this machine" in flops.reason


# -- energy ----------------------------------------------------------------------------


def _sample(time: float, *devices: dict[str, Any]) -> dict[str, Any]:
    return {"time": time, "devices": list(devices), "processes": [], "unavailable": None}


def test_energy_from_the_counter_is_its_difference() -> None:
    samples = [
        _sample(t, {"index": 0, "energy_mj": mj, "power_w": 999.0}, {"index": 1, "energy_mj": mj})
        for t, mj in ((0.0, 1_000), (10.0, 601_000), (20.0, 1_201_000))
    ]
    energy = energy_from_samples(samples)
    assert energy.method == "counter"
    assert energy.devices == 2
    # 1200 J per GPU; the power readings (999 W) are ignored when the counter exists.
    assert energy.kwh == pytest.approx(2 * 1200.0 / 3.6e6)


def test_energy_without_a_counter_integrates_power() -> None:
    samples = [
        _sample(0.0, {"index": 0, "power_w": 100.0, "energy_mj": None}),
        _sample(10.0, {"index": 0, "power_w": 200.0, "energy_mj": None}),
        _sample(20.0, {"index": 0, "power_w": 100.0, "energy_mj": None}),
    ]
    energy = energy_from_samples(samples)
    assert energy.method == "power_integral"
    assert energy.kwh == pytest.approx((1500.0 + 1500.0) / 3.6e6)


def test_a_counter_reset_falls_back_to_power_and_missing_values_are_not_a_crash() -> None:
    reset = [
        _sample(0.0, {"index": 0, "energy_mj": 5_000_000, "power_w": 50.0}),
        _sample(4.0, {"index": 0, "energy_mj": 6_000_000, "power_w": None}),
        _sample(8.0, {"index": 0, "energy_mj": 1_000, "power_w": 50.0}),
        _sample(12.0, {"index": 0, "energy_mj": 2_000, "power_w": 150.0}),
    ]
    energy = energy_from_samples(reset)
    assert energy.method == "power_integral"
    # Intervals touching the missing reading are left out: only 8 s → 12 s counts.
    assert energy.kwh == pytest.approx(400.0 / 3.6e6)

    nothing = [
        _sample(0.0, {"index": 0, "energy_mj": "n/a", "power_w": None}),
        _sample(1.0, {"index": 0}),
    ]
    unknown = energy_from_samples(nothing)
    assert unknown.kwh is None and unknown.method is None
    assert "GPU 0" in unknown.reason


def test_a_recording_without_a_gpu_has_no_energy(tmp_path: Path) -> None:
    path = tmp_path / "system.jsonl"
    line = {"time": 1.0, "devices": [], "unavailable": "no NVIDIA GPU: NVML library not found"}
    path.write_text(json.dumps(line) + "\n{cut off by a cra", encoding="utf-8")
    energy = energy_from_samples(read_system_samples(path))
    assert energy.kwh is None
    assert energy.reason == "no NVML energy: no NVIDIA GPU: NVML library not found"


def test_the_sampler_records_the_total_energy_counter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        sys.modules,
        "pynvml",
        fake_nvml(nvmlDeviceGetTotalEnergyConsumption=lambda handle: 123_456_789),
    )
    snapshot = probe_gpus()
    assert snapshot.energy_mj == ((0, 123_456_789), (1, 123_456_789))
    record = snapshot_to_record(snapshot)
    assert record["devices"][0]["energy_mj"] == 123_456_789
    assert record_to_snapshot(json.loads(json.dumps(record))) == snapshot


def test_a_gpu_without_the_counter_records_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(handle: str) -> int:
        raise FakeNotSupported("Not Supported")

    module: ModuleType = fake_nvml(nvmlDeviceGetTotalEnergyConsumption=unsupported)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    snapshot = probe_gpus()
    assert snapshot.energy_mj == ()
    assert snapshot_to_record(snapshot)["devices"][1]["energy_mj"] is None


# -- money -----------------------------------------------------------------------------


def _sides() -> tuple[PromptSide, PromptSide]:
    baseline = PromptSide("base", "long@1", 1000.0, 100.0, 800.0, "hand")
    candidate = PromptSide("tuned", "short@1", 200.0, 50.0, 20.0, "hand")
    return baseline, candidate


def test_break_even_arithmetic() -> None:
    assert break_even_days(100.0, 25.0) == 4.0
    assert break_even_days(100.0, 0.0) is None
    assert break_even_days(100.0, -3.0) is None

    assumptions = CostAssumptions.resolve(
        WorkspaceSettings(),
        {
            "input_usd_per_mtok": 2.0,
            "output_usd_per_mtok": 10.0,
            "cache_discount": 0.9,
            "requests_per_day": 1000.0,
        },
    )
    baseline, candidate = _sides()
    table, break_even = inference_table(
        assumptions, baseline, candidate, Money(30.0), assumptions["requests_per_day"]
    )
    by_name = {option.name: option for option in table}
    # 1000 requests × (1000·2 + 100·10) / 1e6
    assert by_name[OPTION_LONG_PROMPT].per_day.usd == pytest.approx(3.0)
    # 1000 × (200·2 + 50·10) / 1e6
    assert by_name[OPTION_FINE_TUNED].per_day.usd == pytest.approx(0.9)
    # 800 prefix tokens cached at 2·(1 − 0.9): 1000 × (200·2 + 800·0.2 + 100·10) / 1e6
    assert by_name[OPTION_CACHING].per_day.usd == pytest.approx(1.56)
    assert by_name[OPTION_FINE_TUNED].one_off.usd == 30.0
    assert break_even[0].days == pytest.approx(30.0 / 2.1)
    assert break_even[1].days == pytest.approx(30.0 / 0.66)


def test_unset_prices_leave_money_null_with_the_reason() -> None:
    assumptions = CostAssumptions.resolve(WorkspaceSettings(), {"requests_per_day": 500.0})
    assert assumptions["input_usd_per_mtok"].source == "unset"
    baseline, candidate = _sides()
    table, break_even = inference_table(
        assumptions,
        baseline,
        candidate,
        Money(None, "GPU time: price not set"),
        assumptions["requests_per_day"],
    )
    for option in table:
        assert option.per_day.usd is None
        assert option.per_day.reason is not None and "--input-usd-per-mtok" in option.per_day.reason
    assert all(item.days is None and item.reason for item in break_even)


def test_prices_come_from_flags_over_settings(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text(
        "[cost]\ninput_usd_per_mtok = 3\nelectricity_usd_per_kwh = 0.25\n", encoding="utf-8"
    )
    settings = load_settings(tmp_path)
    assumptions = CostAssumptions.resolve(settings, {"input_usd_per_mtok": 1.5})
    assert assumptions["input_usd_per_mtok"].as_json() == {
        "value": 1.5,
        "unit": "USD per million input tokens",
        "source": "flag",
    }
    assert assumptions["kwh_usd"].value == 0.25
    assert assumptions["kwh_usd"].source == "settings"
    assert assumptions["output_usd_per_mtok"].source == "unset"

    (tmp_path / "settings.toml").write_text("[cost]\ncache_discount = 4\n", encoding="utf-8")
    with pytest.raises(InputError) as refused:
        CostAssumptions.resolve(load_settings(tmp_path))
    assert refused.value.field == "cost.cache_discount"


def test_an_estimate_before_any_run(workspace: Any) -> None:
    store = Store.open(workspace)
    assumptions = CostAssumptions.resolve(
        load_settings(workspace.root),
        {
            "train_tokens": 1_000_000.0,
            "epochs": 2.0,
            "throughput_tokens_per_s": 1000.0,
            "gpu_hour_usd": 1.8,
        },
    )
    report = cost_report(
        workspace=workspace,
        runs=RunRepository(store),
        evals=EvalRepository(store),
        run_id=None,
        baseline_eval=None,
        candidate_eval=None,
        requests_per_day=None,
        assumptions=assumptions,
    )
    training = report.as_json()["training"]
    assert training["wall_s"] == pytest.approx(2000.0)
    assert training["gpu_hours"] == pytest.approx(2000.0 / 3600.0)
    assert training["gpu_cost"]["usd"] == pytest.approx(1.0)
    assert training["basis"].startswith("estimate")
    assert report.as_json()["inference"]["reason"]


def test_json_is_strict_even_for_non_finite_amounts() -> None:
    assert Money(math.nan).as_json() == {"usd": None, "reason": None}
    assert Money(math.inf, "why").as_json() == {"usd": None, "reason": "why"}


def test_importing_cost_loads_no_torch() -> None:
    probe = (
        "import sys, core.decide.cost; "
        "print(','.join(m for m in ('torch', 'transformers', 'textual') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


# -- the CLI on the demo workspace -----------------------------------------------------


def _strict(text: str) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def ftod(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "--workspace", str(folder), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cost-demo")
    build_demo_workspace(folder, log=lambda _text: None)
    return folder


def test_cost_of_the_recorded_cpu_run_says_it_has_no_nvml_energy(demo_folder: Path) -> None:
    result = ftod(
        demo_folder,
        "cost",
        "--baseline",
        "demo-base",
        "--candidate",
        "demo-candidate",
        "--requests-per-day",
        "10000",
        "--input-usd-per-mtok",
        "3",
        "--output-usd-per-mtok",
        "15",
        "--cache-discount",
        "0.9",
        "--gpu-hour-usd",
        "2",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = _strict(result.stdout)
    assert set(report) >= {"assumptions", "training", "inference", "break_even", "table"}
    training = report["training"]
    assert training["energy"]["kwh"] is None
    assert "no NVML energy" in training["energy"]["reason"]
    assert training["energy_cost"]["usd"] is None
    # A CPU recording has no GPU to count: GPU time stays unpriced until --gpus says so.
    assert training["gpu_hours"] is None and "--gpus" in training["gpu_hours_reason"]

    run_dir = next((demo_folder / ".ftod" / "runs").iterdir())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    tokens = sum(event["tokens"] for event in events if event["type"] == "train")
    flops = training["flops"]
    assert flops["tokens_seen"] == tokens
    # sample_runs/base_model: 4 layers, hidden 128, 4 heads of 32, 2 KV heads, MLP 344,
    # vocab 2048, tied embeddings; LoRA r=8 on every linear; max_seq_len 512.
    per_layer = 2 * 128 * 128 + 2 * 128 * 64 + 3 * 128 * 344 + 2 * 128
    frozen = 4 * per_layer + 128 + 2048 * 128
    lora = 4 * 8 * (2 * 256 + 2 * 192 + 3 * (128 + 344))
    assert flops["frozen_parameters"] == frozen
    run_json = json.loads((run_dir / "run.json").read_text())
    assert frozen == run_json["lineage"]["model_parameters"]
    assert flops["lora_parameters"] == lora
    assert flops["total"] == pytest.approx((4 * frozen + 6 * lora + 6 * 4 * 512 * 128) * tokens)
    assert flops["eu_ai_act"]["status"] == "below"

    names = [option["option"] for option in report["table"]]
    assert names == [OPTION_LONG_PROMPT, OPTION_FINE_TUNED, OPTION_CACHING]
    baseline = report["inference"]["baseline"]
    candidate = report["inference"]["candidate"]
    assert baseline["input_tokens_per_request"] > candidate["input_tokens_per_request"]
    assert report["assumptions"]["gpu_hour_usd"]["source"] == "flag"
    assert report["assumptions"]["kwh_usd"] == {
        "value": None,
        "unit": "USD per kWh",
        "source": "unset",
    }

    human = ftod(demo_folder, "cost", "--baseline", "demo-base", "--candidate", "demo-candidate")
    assert human.returncode == 0, human.stderr
    assert "No energy figure" in human.stdout
    assert "no NVML energy" in human.stdout


def test_cost_counts_prompts_with_the_real_tokenizer(demo_folder: Path) -> None:
    tokenizer = REPO_ROOT / "sample_runs" / "base_model"
    result = ftod(
        demo_folder,
        "cost",
        "--baseline",
        "demo-base",
        "--candidate",
        "demo-candidate",
        "--tokenizer",
        str(tokenizer),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    inference = _strict(result.stdout)["inference"]
    assert inference["baseline"]["counted_with"] == "tokenizer base_model"
    assert (
        inference["baseline"]["shared_prefix_tokens"]
        > inference["candidate"]["shared_prefix_tokens"]
    )


@pytest.mark.parametrize(
    "args",
    [
        ("--run", "no-such-run"),
        ("--baseline", "no-such-eval", "--candidate", "demo-candidate"),
        ("--kwh-usd", "-1"),
        ("--cache-discount", "1.5"),
        ("--tokenizer", "/no/such/folder", "--baseline", "demo-base", "--candidate", "demo-base"),
    ],
)
def test_unusable_input_exits_2(demo_folder: Path, args: tuple[str, ...]) -> None:
    result = ftod(demo_folder, "cost", *args, "--json")
    assert result.returncode == 2, (result.stdout, result.stderr)
