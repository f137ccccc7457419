"""Prompts, `ftod eval run` and `ftod compare-run` on the CPU with a tiny random Llama and a real
LoRA adapter: generation, storage as an eval, resume after a crash, and the faults."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from tests.conftest import build_tiny_llama, clean_rows, write_jsonl
from tui.cli import main
from tui.cli_generate import compare_run, eval_run, prompt_group

ROOT = Path(__file__).resolve().parent.parent
MAX_NEW = 6


def invoke(workspace: Any, command: click.Command, *args: str) -> Result:
    return CliRunner().invoke(command, list(args), obj={"workspace": workspace.root})


def invoke_main(workspace: Any, *args: str) -> Result:
    return CliRunner().invoke(main, ["--workspace", str(workspace.root), *args])


def write_prompt(folder: Path, name: str, **content: Any) -> Path:
    import yaml

    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def _save_adapter(model_dir: Path, folder: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(str(model_dir))
    # init_lora_weights=False: a random B matrix, so the adapter really changes the outputs.
    lora = LoraConfig(
        r=4,
        lora_alpha=32,
        target_modules=["q_proj", "v_proj"],
        task_type="CAUSAL_LM",
        init_lora_weights=False,
    )
    get_peft_model(base, lora).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_adapter(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return _save_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter"))


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """A tiny Llama with hidden size 48 (the fixture's has 32)."""
    return build_tiny_llama(
        tmp_path_factory.mktemp("other-llama"), tiny_tokenizer_dir, hidden_size=48
    )


@pytest.fixture
def ws(workspace: Any, tmp_path: Path) -> Any:
    data = write_jsonl(tmp_path / "support.jsonl", clean_rows())
    added = invoke_main(workspace, "data", "add", str(data), "--name", "support", "--json")
    assert added.exit_code == 0, added.output
    plain = write_prompt(tmp_path, "plain")
    short = write_prompt(tmp_path, "short", system="Answer briefly.", max_new_tokens=MAX_NEW)
    for name, path in (("plain", plain), ("short", short)):
        result = invoke(workspace, prompt_group, "add", name, "--file", str(path))
        assert result.exit_code == 0, result.output
    return workspace


def run_eval(ws: Any, model: Path, label: str, *extra: str) -> Result:
    return invoke(
        ws,
        eval_run,
        "--model",
        str(model),
        "--prompt",
        "plain",
        "--data",
        "support@1",
        "--label",
        label,
        "--max-new-tokens",
        str(MAX_NEW),
        "--batch-size",
        "4",
        "--json",
        *extra,
    )


def stored_outputs(ws: Any, label: str) -> dict[int, dict[str, Any]]:
    from store.db import Store
    from store.evals import EvalRepository

    repo = EvalRepository(Store.open(ws))
    record = repo.eval_by_ref(label)
    return {
        o.line: {
            "output": o.output,
            "input_tokens": o.input_tokens,
            "output_tokens": o.output_tokens,
            "latency_s": o.latency_s,
            "finish_reason": o.finish_reason,
        }
        for o in repo.outputs(record.eval_id)
    }


def eval_labels(ws: Any) -> list[str]:
    from store.db import Store
    from store.evals import EvalRepository

    return EvalRepository(Store.open(ws)).labels()


def count_batches(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    import core.evals.generate as generate

    seen: list[list[int]] = []
    real = generate._generate_batch

    def counting(loaded: Any, batch: Sequence[Any], **kwargs: Any) -> Any:
        seen.append([item.line for item in batch])
        return real(loaded, batch, **kwargs)

    monkeypatch.setattr(generate, "_generate_batch", counting)
    return seen


# -- prompts -------------------------------------------------------------------------------------


def test_prompt_add_list_show_and_versions(workspace: Any, tmp_path: Path) -> None:
    path = write_prompt(
        tmp_path, "p", system="Be brief.", few_shot=[{"user": "hi", "assistant": "hello"}]
    )
    first = invoke(workspace, prompt_group, "add", "support", "--file", str(path), "--json")
    assert first.exit_code == 0, first.output
    record = json.loads(first.stdout)
    assert record["version"] == 1 and record["created"] is True
    assert record["max_new_tokens"] == 256 and record["temperature"] == 0.0
    assert record["few_shot"] == [{"user": "hi", "assistant": "hello"}]

    again = invoke(workspace, prompt_group, "add", "support", "--file", str(path), "--json")
    assert json.loads(again.stdout)["version"] == 1
    assert json.loads(again.stdout)["created"] is False

    path = write_prompt(tmp_path, "p", system="Be very brief.", stop=["\n\n"], temperature=0.5)
    second = invoke(workspace, prompt_group, "add", "support", "--file", str(path), "--json")
    assert json.loads(second.stdout)["version"] == 2

    listed = json.loads(invoke(workspace, prompt_group, "list", "--json").stdout)
    assert [(p["name"], p["version"]) for p in listed] == [("support", 2)]
    shown = json.loads(invoke(workspace, prompt_group, "show", "support@1", "--json").stdout)
    assert shown["system"] == "Be brief." and shown["stop"] == []
    latest = json.loads(invoke(workspace, prompt_group, "show", "support", "--json").stdout)
    assert latest["stop"] == ["\n\n"] and latest["temperature"] == 0.5
    text = invoke(workspace, prompt_group, "show", "support")
    assert text.exit_code == 0 and "support@2" in text.output

    assert invoke(workspace, prompt_group, "show", "nope").exit_code == 2
    assert invoke(workspace, prompt_group, "show", "support@9").exit_code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_new_tokens: -1\ncolour: red\n")
    refused = invoke(workspace, prompt_group, "add", "support", "--file", str(bad))
    assert refused.exit_code == 2
    assert "max_new_tokens" in refused.output and "colour" in refused.output
    assert invoke(workspace, prompt_group, "add", "a b", "--file", str(path)).exit_code == 2


def test_input_messages_replace_system_and_add_few_shot() -> None:
    from core.evals.prompts import PromptSpec, input_messages
    from store.prompts import FewShot

    messages = clean_rows()[0]["messages"]
    spec = PromptSpec("New system.", (FewShot("q", "a"),), 8, 0.0, ())
    built = input_messages(spec, messages)
    assert [m["role"] for m in built] == ["system", "user", "assistant", "user"]
    assert built[0]["content"] == "New system." and built[-1] == messages[1]
    kept = input_messages(PromptSpec(None, (), 8, 0.0, ()), messages)
    assert kept == messages[:2]


# -- eval run ------------------------------------------------------------------------------------


def test_eval_run_stores_every_output_deterministically(ws: Any, tiny_model_dir: Path) -> None:
    result = run_eval(ws, tiny_model_dir, "base-1")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["source"] == "generate" and payload["rows"] == 10
    assert payload["prompt"] == "plain@1" and payload["generated"] == 10
    outputs = stored_outputs(ws, "base-1")
    assert sorted(outputs) == list(range(1, 11))
    for row in outputs.values():
        assert row["input_tokens"] > 0 and row["latency_s"] > 0
        assert 0 < row["output_tokens"] <= MAX_NEW
        assert row["finish_reason"] in {"length", "eos"}
        if row["finish_reason"] == "length":
            assert row["output_tokens"] == MAX_NEW
    assert any(row["finish_reason"] == "length" for row in outputs.values())
    evals_dir = ws.root / "evals"
    assert not list(evals_dir.glob("*.partial.jsonl"))
    assert (evals_dir / "base-1.jsonl").is_file()

    again = run_eval(ws, tiny_model_dir, "base-2")
    assert again.exit_code == 0, again.output
    second = stored_outputs(ws, "base-2")
    assert {k: v["output"] for k, v in second.items()} == {
        k: v["output"] for k, v in outputs.items()
    }
    # Stored exactly like an import: compare works on it.
    compared = invoke_main(ws, "compare", "base-1", "base-2", "--json")
    assert compared.exit_code == 0, compared.output
    assert json.loads(compared.stdout)["overall"]["delta"] == 0

    taken = run_eval(ws, tiny_model_dir, "base-1")
    assert taken.exit_code == 2 and "already exists" in taken.output


def test_eval_with_options_is_eval_run(ws: Any, tiny_model_dir: Path) -> None:
    # The issue spells generation `ftod eval --model …`; `eval` is also the group of `import`.
    spelled = invoke_main(
        ws,
        *("eval", "--model", str(tiny_model_dir), "--prompt", "plain", "--data", "support@1"),
        *("--label", "spelled", "--max-new-tokens", str(MAX_NEW), "--batch-size", "4", "--json"),
    )
    assert spelled.exit_code == 0, spelled.output
    assert json.loads(spelled.stdout)["generated"] == 10
    assert run_eval(ws, tiny_model_dir, "as-run").exit_code == 0
    assert {k: v["output"] for k, v in stored_outputs(ws, "spelled").items()} == {
        k: v["output"] for k, v in stored_outputs(ws, "as-run").items()
    }
    missing = invoke_main(ws, "eval", "--model", str(tiny_model_dir), "--data", "support@1")
    assert missing.exit_code == 2 and "--prompt" in missing.output
    helped = invoke_main(ws, "eval", "--help")
    assert helped.exit_code == 0 and "import" in helped.output and "run" in helped.output


def test_stop_strings_cut_the_output(ws: Any, tiny_model_dir: Path, tmp_path: Path) -> None:
    assert run_eval(ws, tiny_model_dir, "full", "--max-new-tokens", "12").exit_code == 0
    full = stored_outputs(ws, "full")
    line, text = next((k, v["output"]) for k, v in full.items() if len(v["output"]) >= 4)
    stop = text[2:4]
    expected = text[: text.find(stop)]
    path = write_prompt(tmp_path, "stop", stop=[stop], max_new_tokens=12)
    assert invoke(ws, prompt_group, "add", "stopping", "--file", str(path)).exit_code == 0
    result = invoke(
        ws,
        eval_run,
        *("--model", str(tiny_model_dir), "--prompt", "stopping", "--data", "support@1"),
        *("--label", "stopped", "--batch-size", "4"),
    )
    assert result.exit_code == 0, result.output
    stopped = stored_outputs(ws, "stopped")
    assert stopped[line]["output"] == expected
    assert stopped[line]["finish_reason"] == "stop"
    for row in stopped.values():
        assert stop not in row["output"]


def test_resume_after_a_crash(
    ws: Any, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.evals.generate as generate

    real = generate._generate_batch
    calls = 0

    def crash_on_second(loaded: Any, batch: Sequence[Any], **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("simulated crash")
        return real(loaded, batch, **kwargs)

    monkeypatch.setattr(generate, "_generate_batch", crash_on_second)
    crashed = run_eval(ws, tiny_model_dir, "resumed")
    assert crashed.exit_code != 0
    partial = ws.root / "evals" / "resumed.partial.jsonl"
    assert len(partial.read_text().splitlines()) == 4
    assert eval_labels(ws) == []

    monkeypatch.setattr(generate, "_generate_batch", real)
    refused = run_eval(ws, tiny_model_dir, "resumed")
    assert refused.exit_code == 2 and "--resume" in refused.output

    seen = count_batches(monkeypatch)
    result = run_eval(ws, tiny_model_dir, "resumed", "--resume")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["generated"] == 6 and payload["resumed"] == 4
    assert sum(len(batch) for batch in seen) == 6
    assert not partial.exists()

    fresh = run_eval(ws, tiny_model_dir, "fresh")
    assert fresh.exit_code == 0, fresh.output
    assert {k: v["output"] for k, v in stored_outputs(ws, "resumed").items()} == {
        k: v["output"] for k, v in stored_outputs(ws, "fresh").items()
    }


def test_resume_keeps_a_hand_written_partial_file(
    ws: Any, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    partial = ws.root / "evals" / "hand.partial.jsonl"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text(
        '{"line": 3, "output": "HAND 3", "finish_reason": "eos"}\n'
        '{"line": 7, "output": "HAND 7"}\n'
        '{"line": 8, "outp'  # torn by the crash
    )
    seen = count_batches(monkeypatch)
    result = run_eval(ws, tiny_model_dir, "hand", "--resume")
    assert result.exit_code == 0, result.output
    generated = sorted(line for batch in seen for line in batch)
    assert generated == [1, 2, 4, 5, 6, 8, 9, 10]
    outputs = stored_outputs(ws, "hand")
    assert outputs[3]["output"] == "HAND 3" and outputs[7]["output"] == "HAND 7"
    assert len(outputs) == 10


# -- faults --------------------------------------------------------------------------------------


def test_adapter_for_another_base_is_refused(
    ws: Any, tiny_model_dir: Path, other_model_dir: Path, tmp_path: Path
) -> None:
    other_adapter = _save_adapter(other_model_dir, tmp_path / "other-adapter")
    result = run_eval(ws, tiny_model_dir, "wrong", "--adapter", str(other_adapter))
    assert result.exit_code == 2, result.output
    assert "was trained on" in result.output and str(other_model_dir) in result.output
    assert eval_labels(ws) == []
    assert not list(ws.root.glob("evals/*"))

    # An adapter whose config names the right base but whose weights do not fit it.
    lying = tmp_path / "lying-adapter"
    shutil.copytree(other_adapter, lying)
    config = json.loads((lying / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tiny_model_dir)
    (lying / "adapter_config.json").write_text(json.dumps(config))
    result = run_eval(ws, tiny_model_dir, "wrong", "--adapter", str(lying))
    assert result.exit_code == 2, result.output
    assert "does not fit" in result.output
    assert eval_labels(ws) == []


def test_missing_prompt_and_missing_adapter_exit_2(ws: Any, tiny_model_dir: Path) -> None:
    result = invoke(
        ws,
        eval_run,
        *("--model", str(tiny_model_dir), "--prompt", "nope", "--data", "support@1"),
        *("--label", "x"),
    )
    assert result.exit_code == 2 and "No prompt named 'nope'" in result.output
    result = run_eval(ws, tiny_model_dir, "x", "--adapter", "no-such-run")
    assert result.exit_code == 2
    assert eval_labels(ws) == []


# -- compare-run ---------------------------------------------------------------------------------


def test_compare_run_toggles_the_adapter(ws: Any, tiny_model_dir: Path, tiny_adapter: Path) -> None:
    result = invoke(
        ws,
        compare_run,
        *("--model", str(tiny_model_dir), "--adapter", str(tiny_adapter)),
        *("--baseline-prompt", "plain", "--candidate-prompt", "short"),
        *("--data", "support@1", "--label-prefix", "cr", "--batch-size", "4"),
        *("--max-new-tokens", str(MAX_NEW), "--json"),
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["baseline"]["label"] == "cr-base"
    assert payload["candidate"]["label"] == "cr-candidate"
    assert payload["candidate"]["adapter"] == str(tiny_adapter.resolve())
    assert payload["baseline"]["adapter"] is None
    assert eval_labels(ws) == ["cr-base", "cr-candidate"]
    assert invoke_main(ws, "compare", "cr-base", "cr-candidate").exit_code == 0

    # The baseline ran with the adapter disabled: it equals a plain base-model eval.
    plain = run_eval(ws, tiny_model_dir, "plain-base")
    assert plain.exit_code == 0, plain.output
    base = {k: v["output"] for k, v in stored_outputs(ws, "cr-base").items()}
    assert base == {k: v["output"] for k, v in stored_outputs(ws, "plain-base").items()}

    # The adapter changes the outputs (same prompt, adapter on).
    with_adapter = run_eval(ws, tiny_model_dir, "with-adapter", "--adapter", str(tiny_adapter))
    assert with_adapter.exit_code == 0, with_adapter.output
    assert {k: v["output"] for k, v in stored_outputs(ws, "with-adapter").items()} != base


def test_compare_run_loads_the_base_once(
    ws: Any, tiny_model_dir: Path, tiny_adapter: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM

    loads = 0
    real = AutoModelForCausalLM.from_pretrained

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal loads
        loads += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", counting)
    result = invoke(
        ws,
        compare_run,
        *("--model", str(tiny_model_dir), "--adapter", str(tiny_adapter)),
        *("--baseline-prompt", "plain", "--candidate-prompt", "plain"),
        *("--data", "support@1", "--label-prefix", "once", "--max-new-tokens", "3"),
    )
    assert result.exit_code == 0, result.output
    assert loads == 1


def test_new_modules_do_not_import_torch() -> None:
    probe = (
        "import sys\n"
        "import core.evals.generate, core.evals.prompts, store.prompts\n"
        "print(','.join(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_adapter_of_a_run_by_id_and_weights_hash(
    ws: Any, tiny_model_dir: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    from core.runs.validate import weights_digest

    def make_run(run_id: str, digest: str) -> None:
        run_dir = ws.runs_dir / run_id
        shutil.copytree(tiny_adapter, run_dir / "adapter")
        run = {
            "run_id": run_id,
            "name": run_id,
            "config": {"base_model": str(tiny_model_dir)},
            "lineage": {"base_model_weights_sha256": digest},
        }
        (run_dir / "run.json").write_text(json.dumps(run))

    # The same weights in another folder: the run's recorded weights hash vouches for them.
    moved = tmp_path / "moved-model"
    shutil.copytree(tiny_model_dir, moved)
    make_run("run-good", weights_digest(tiny_model_dir, None))
    make_run("run-other", "0" * 64)
    result = run_eval(ws, moved, "by-run", "--adapter", "run-good")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["adapter"] == "run-good"
    refused = run_eval(ws, moved, "by-run-2", "--adapter", "run-other")
    assert refused.exit_code == 2 and "was trained on" in refused.output
    (ws.runs_dir / "run-empty").mkdir()
    (ws.runs_dir / "run-empty" / "run.json").write_text(json.dumps({"run_id": "run-empty"}))
    unfinished = run_eval(ws, tiny_model_dir, "by-run-3", "--adapter", "run-empty")
    assert unfinished.exit_code == 2 and "no adapter yet" in unfinished.output
    assert eval_labels(ws) == ["by-run"]


def test_resume_with_other_settings_is_refused(
    ws: Any, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.evals.generate as generate

    real = generate._generate_batch
    calls = 0

    def crash_on_second(loaded: Any, batch: Sequence[Any], **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        return real(loaded, batch, **kwargs)

    monkeypatch.setattr(generate, "_generate_batch", crash_on_second)
    interrupted = run_eval(ws, tiny_model_dir, "mixed")
    assert interrupted.exit_code == 130
    monkeypatch.setattr(generate, "_generate_batch", real)
    refused = run_eval(ws, tiny_model_dir, "mixed", "--resume", "--max-new-tokens", "3")
    assert refused.exit_code == 2 and "other settings" in refused.output
    resumed = run_eval(ws, tiny_model_dir, "mixed", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["resumed"] == 4
    assert not list(ws.root.glob("evals/*.partial*"))


def test_out_of_memory_keeps_the_partial_file_and_exits_2(
    ws: Any, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import core.evals.generate as generate

    real = generate._generate_batch
    calls = 0

    def oom_on_second(loaded: Any, batch: Sequence[Any], **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(loaded, batch, **kwargs)

    monkeypatch.setattr(generate, "_generate_batch", oom_on_second)
    result = run_eval(ws, tiny_model_dir, "oom")
    assert result.exit_code == 2, result.output
    assert "--resume" in result.output and "--batch-size" in result.output
    assert len((ws.root / "evals" / "oom.partial.jsonl").read_text().splitlines()) == 4
    assert eval_labels(ws) == []


def test_inputs_beyond_the_context_exit_2(ws: Any, tiny_model_dir: Path, tmp_path: Path) -> None:
    path = write_prompt(tmp_path, "huge", system="parcel refund " * 400)
    assert invoke(ws, prompt_group, "add", "huge", "--file", str(path)).exit_code == 0
    result = invoke(
        ws,
        eval_run,
        *("--model", str(tiny_model_dir), "--prompt", "huge", "--data", "support@1"),
        *("--label", "huge"),
    )
    assert result.exit_code == 2 and "context of 512 tokens" in result.output
    assert eval_labels(ws) == []
