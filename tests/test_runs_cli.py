"""The `ftod runs` and `ftod train` contracts without a trainer: imports, errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from core.runs.imports import parse_training_log
from tests.trainer_logs import trainer_logs
from tui.cli import main

LOGS = trainer_logs()


def invoke(workspace: Any, *args: str) -> Any:
    return CliRunner().invoke(main, ["--workspace", str(workspace.root), *args])


@pytest.mark.parametrize("log", LOGS, ids=[p.name[:48] for p in LOGS])
def test_import_prints_the_run_id_first_and_show_reports_the_last_step(
    workspace: Any, log: Path
) -> None:
    result = invoke(workspace, "runs", "import", str(log))
    assert result.exit_code == 0, result.output
    run_id = result.output.splitlines()[0]
    assert (workspace.runs_dir / run_id / "run.json").is_file()
    shown = json.loads(invoke(workspace, "runs", "show", run_id, "--json").output)
    parsed = parse_training_log(log)
    train_steps = [e["step"] for e in parsed.events if e["type"] == "train"]
    assert shown["id"] == run_id
    assert shown["source"] == parsed.format
    assert shown["state"] in ("succeeded", "interrupted")
    if train_steps:
        assert shown["step"] == train_steps[-1]
        assert shown["metrics_logged"]["train"] == len(set(train_steps))
    assert shown["lineage"]["source_sha256"]


def test_imported_runs_list_beside_each_other(workspace: Any) -> None:
    assert len(LOGS) >= 2
    for log in LOGS[:3]:
        assert invoke(workspace, "runs", "import", str(log)).exit_code == 0
    listed = json.loads(invoke(workspace, "runs", "list", "--json").output)
    assert len(listed) == 3
    assert {run["source"] for run in listed} <= {
        "hf_trainer_state",
        "llamafactory_trainer_log",
        "openai_results_csv",
        "stdout_metrics",
    }


def test_openai_results_csv_imports(workspace: Any, tmp_path: Path) -> None:
    csv = tmp_path / "step_metrics.csv"
    csv.write_text(
        "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
        "1,2.5,0.4,,\n2,2.1,0.45,2.3,0.41\n3,1.9,0.5,,\n"
    )
    result = invoke(workspace, "runs", "import", str(csv), "--name", "gpt-ft")
    assert result.exit_code == 0, result.output
    shown = json.loads(invoke(workspace, "runs", "show", "gpt-ft", "--json").output)
    assert shown["step"] == 3 and shown["loss"] == pytest.approx(1.9)
    assert shown["val_loss"] == pytest.approx(2.3)


def test_import_of_junk_is_a_usage_error(workspace: Any, tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_bytes(b"\x00\x01 not a log")
    result = invoke(workspace, "runs", "import", str(junk))
    assert result.exit_code == 2
    assert not any(workspace.runs_dir.iterdir())
    missing = invoke(workspace, "runs", "import", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2


def test_unknown_run_and_bad_config_exit_2(workspace: Any, tmp_path: Path) -> None:
    assert invoke(workspace, "runs", "show", "no-such-run").exit_code == 2
    as_json = invoke(workspace, "runs", "show", "no-such-run", "--json")
    assert json.loads(as_json.output.splitlines()[0])["error"]["exit_code"] == 2
    config = tmp_path / "bad.yaml"
    config.write_text("base_model: m\ndataset: d@1\ntrain:\n  lr: fast\n")
    result = invoke(workspace, "train", str(config))
    assert result.exit_code == 2
    assert "train.lr" in result.output
    assert invoke(workspace, "train", str(tmp_path / "missing.yaml")).exit_code == 2


def test_cancel_or_resume_of_a_finished_import_is_refused(workspace: Any) -> None:
    run_id = invoke(workspace, "runs", "import", str(LOGS[0])).output.splitlines()[0]
    assert invoke(workspace, "runs", "cancel", run_id).exit_code == 2
    resumed = invoke(workspace, "runs", "resume", run_id)
    assert resumed.exit_code == 2
    assert "imported" in resumed.output


def test_runs_list_on_an_empty_workspace(workspace: Any) -> None:
    result = invoke(workspace, "runs", "list")
    assert result.exit_code == 0 and "No runs yet" in result.output
    assert json.loads(invoke(workspace, "runs", "list", "--json").output) == []


def test_import_of_an_output_folder_takes_its_newest_checkpoint_state(
    workspace: Any, tmp_path: Path
) -> None:
    state = next(p for p in LOGS if p.name.startswith("hf_trainer_state__trl_sft"))
    for step in (200, 1000):
        folder = tmp_path / "out" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "trainer_state.json").write_bytes(state.read_bytes())
    result = invoke(workspace, "runs", "import", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    run = json.loads((workspace.runs_dir / result.output.splitlines()[0] / "run.json").read_text())
    assert run["imported_from"].endswith("checkpoint-1000/trainer_state.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = invoke(workspace, "runs", "import", str(empty))
    assert refused.exit_code == 2 and "trainer_state.json" in refused.output


def run_folders(workspace: Any) -> list[str]:
    return sorted(path.name for path in workspace.runs_dir.iterdir())


def test_steps_past_int32_import_and_list(workspace: Any, tmp_path: Path) -> None:
    step = 2**31 + 5
    log = tmp_path / "trainer_state.json"
    history = [{"loss": 1.0, "step": step, "num_input_tokens_seen": 2**65}]
    log.write_text(json.dumps({"log_history": history, "max_steps": step, "global_step": step}))
    imported = invoke(workspace, "runs", "import", str(log), "--json")
    assert imported.exit_code == 0, imported.output
    (listed,) = json.loads(invoke(workspace, "runs", "list", "--json").output)
    assert (listed["step"], listed["total_steps"], listed["state"]) == (step, step, "succeeded")


@pytest.mark.parametrize(
    ("row", "refused"),
    [
        ({"loss": 1.0, "step": 2**63}, "step 9223372036854775808 is out of range"),
        ({"loss": 1.0, "step": 4, "num_input_tokens_seen": 10**39}, "tokens 1"),
    ],
    ids=["step", "tokens"],
)
def test_values_the_index_cannot_hold_are_refused_before_a_run_folder_exists(
    workspace: Any, tmp_path: Path, row: dict[str, Any], refused: str
) -> None:
    log = tmp_path / "trainer_state.json"
    log.write_text(json.dumps({"log_history": [row]}))
    before = run_folders(workspace)
    for _attempt in range(2):  # a retry adds no folder either
        result = invoke(workspace, "runs", "import", str(log))
        assert result.exit_code == 2, result.output
        assert refused in result.output and "nothing was imported" in result.output
        assert run_folders(workspace) == before
    assert invoke(workspace, "runs", "list", "--json").exit_code == 0


def test_an_import_the_index_refuses_after_all_leaves_no_folder(
    workspace: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.runs.imports

    # Were the checks before the import to miss a value, ingest still refuses the run:
    # the folder goes too, so no later command trips over it.
    monkeypatch.setattr(core.runs.imports, "metrics_problem", lambda rows: None)
    log = tmp_path / "trainer_state.json"
    row = {"loss": 1.0, "step": 4, "num_input_tokens_seen": 10**39}
    log.write_text(json.dumps({"log_history": [row]}))
    before = run_folders(workspace)
    result = invoke(workspace, "runs", "import", str(log))
    assert result.exit_code == 2, result.output
    assert "cannot be imported" in result.output and "tokens" in result.output
    assert run_folders(workspace) == before
