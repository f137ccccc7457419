"""Every `--json` command of the CLI prints strict JSON: no NaN, no Infinity.

The commands are found by walking the click group, so a new command with --json is covered
(or this test fails until it is). Each runs as a real `ftod` process on the demo workspace,
plus what the demo lacks: a run whose loss went NaN, a launched (and cancelled, and resumed)
training run, generated evals and a judge run with the 1M-parameter sample model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from tests.conftest import clean_rows, write_jsonl
from tui.cli import main
from tui.demo import BASE_MODEL, RUN_CONFIG_NAME, SUPPORT_DIR, build_demo_workspace

REPO = Path(__file__).resolve().parent.parent
EVALS = REPO / "sample_runs" / "evals"
NAN_TRAINER_STATE = (
    '{"log_history": [\n'
    '  {"loss": 2.5, "learning_rate": 1e-4, "epoch": 0.05, "step": 5},\n'
    '  {"eval_loss": NaN, "epoch": 0.1, "step": 10},\n'
    '  {"loss": NaN, "grad_norm": Infinity, "learning_rate": 1e-4, "epoch": 0.1, "step": 10}\n'
    '], "max_steps": 100, "global_step": 10}'
)


def json_commands(group: click.Group = main, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    """The path ("runs list") of every command under `group` that has a --json option."""
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        if isinstance(command, click.Group):
            yield from json_commands(command, path)
        elif any("--json" in param.opts for param in command.params):
            yield " ".join(path)


def reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def strict_loads(text: str) -> Any:
    return json.loads(text, parse_constant=reject_constant)


@dataclass(frozen=True)
class Ran:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    allowed: tuple[int, ...]


def ftod(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "--workspace", str(folder / ".ftod"), *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Ran]]:
    """Every --json command run at least once, in an order where each finds what it needs."""
    folder = tmp_path_factory.mktemp("contract") / "demo"
    build_demo_workspace(folder, log=lambda _text: None)
    tiny = write_jsonl(folder / "tiny.jsonl", clean_rows()[:6])
    nan_log = folder / "diverged" / "trainer_state.json"
    nan_log.parent.mkdir()
    nan_log.write_text(NAN_TRAINER_STATE, encoding="utf-8")
    # Long enough that the run is still going when it is cancelled.
    config = yaml.safe_load((folder / RUN_CONFIG_NAME).read_text(encoding="utf-8"))
    config["name"] = "contract-run"
    config["train"]["epochs"] = 50
    config_path = folder / "contract-run.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")

    results: dict[str, list[Ran]] = {}
    state: dict[str, str] = {}

    def step(command: str, *args: str, allowed: tuple[int, ...] = (0,)) -> Any:
        words = tuple(command.split())
        done = ftod(folder, *words, *args, "--json")
        results.setdefault(command, []).append(
            Ran((*words, *args), done.returncode, done.stdout, done.stderr, allowed)
        )
        try:
            return strict_loads(done.stdout)
        except ValueError:
            return None  # reported by the test of this command

    model = str(BASE_MODEL)
    step("data check", str(SUPPORT_DIR / "support_tickets.jsonl"), allowed=(1,))
    step("data add", str(tiny), "--name", "tiny")
    step("data list")
    step("data show", "support-tickets@1")
    step("data split", "tiny@1", "--val", "0.2", "--test", "0.2")
    imported = step("runs import", str(nan_log), "--name", "diverged")
    state["nan_run"] = imported["id"] if isinstance(imported, dict) else "diverged"
    step("runs list")
    step("runs show", state["nan_run"])
    step("runs logs", "support-lora")
    started = step("train", str(config_path))
    run_id = started["id"] if isinstance(started, dict) else "contract-run"
    step("runs cancel", run_id, "--grace", "60")
    step("runs resume", run_id)
    step("runs cancel", run_id, "--grace", "60")
    step("prompt add", "contract-prompt", "--file", str(EVALS / "prompt-lora-short.yaml"))
    step("prompt list")
    step("prompt show", "contract-prompt")
    step(
        "eval import",
        *("--data", "heldout-eval@1", "--outputs", str(EVALS / "demo-candidate.jsonl")),
        *("--label", "reimported", "--scorer", "rouge_l", "--scorer", "exact"),
    )
    step(
        "eval run",
        *("--model", model, "--prompt", "base-fewshot", "--data", "tiny@1"),
        *("--label", "generated", "--max-new-tokens", "4", "--batch-size", "6"),
    )
    step(
        "compare-run",
        *("--model", model, "--data", "tiny@1", "--adapter", "support-lora"),
        *("--baseline-prompt", "base-fewshot", "--candidate-prompt", "lora-short"),
        *("--label-prefix", "pair", "--max-new-tokens", "4", "--batch-size", "6"),
    )
    step(
        "judge run",
        *("--baseline", "pair-base", "--candidate", "pair-candidate"),
        *("--model", model, "--batch-size", "6"),
    )
    step("judge show", "--baseline", "demo-base", "--candidate", "demo-candidate")
    step("evals list")
    step("evals show", "demo-candidate")
    step("compare", "demo-base", "demo-candidate", "--scorer", "rouge_l")
    step(
        "gate",
        *("--spec", str(EVALS / "gate.yaml"), "--baseline", "demo-base"),
        *("--candidate", "demo-candidate"),
        allowed=(0, 1),
    )
    step("cost", "--baseline", "demo-base", "--candidate", "demo-candidate")
    step("decide decide-one", "contract-decision", "--symptom", "tone", "--symptom", "verbose")
    step("decide list")
    step("decide show", "contract-decision")
    step("store check")
    step("store backup", str(folder / "backup.duckdb"))
    return results


def test_the_group_has_json_commands_to_check() -> None:
    found = set(json_commands())
    assert {"runs list", "runs show", "data show", "evals show", "judge show"} <= found


@pytest.mark.parametrize("command", sorted(json_commands()))
def test_json_command_prints_strict_json(ran: dict[str, list[Ran]], command: str) -> None:
    assert command in ran, f"`ftod {command}` has --json but this test never runs it"
    for each in ran[command]:
        where = f"ftod {' '.join(each.args)} --json (exit {each.returncode}): {each.stderr[-2000:]}"
        assert each.returncode in each.allowed, where
        assert each.stdout.count("\n") == 1, f"one JSON document on one line: {where}"
        payload = strict_loads(each.stdout)
        assert not (isinstance(payload, dict) and "error" in payload), where


def test_a_nan_loss_is_null_and_the_same_in_list_and_show(ran: dict[str, list[Ran]]) -> None:
    (listed,) = ran["runs list"]
    (shown,) = ran["runs show"]
    run = next(item for item in strict_loads(listed.stdout) if item["name"] == "diverged")
    show = strict_loads(shown.stdout)
    assert run["loss"] is None and run["val_loss"] is None and run["best_val_loss"] is None
    assert run["step"] == 10
    common = {key: value for key, value in show.items() if key in run}
    assert common == run, "runs list and runs show serialise a run the same way"


def test_the_cancelled_run_reports_its_state(ran: dict[str, list[Ran]]) -> None:
    first, second = ran["runs cancel"]
    assert strict_loads(first.stdout)["state"] == "cancelled"
    assert strict_loads(second.stdout)["state"] == "cancelled"
