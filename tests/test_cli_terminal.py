"""User text never reaches the terminal as control sequences: run names are refused where a
person types them, sanitised where an imported log supplies them, and escaped when printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.safetext import escape_control
from tui.demo import BASE_MODEL

REPO = Path(__file__).resolve().parent.parent
ESC_TITLE = "\x1b]0;owned\x07\x1b[31mred"
TRAINER_STATE = json.dumps(
    {
        "log_history": [
            {"loss": 2.5, "learning_rate": 1e-4, "epoch": 0.1, "step": 5},
            {"loss": 2.1, "learning_rate": 1e-4, "epoch": 0.2, "step": 10},
        ],
        "max_steps": 10,
        "global_step": 10,
    }
)


def ftod(folder: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["COLUMNS"] = "200"  # the runs table is not cut to 80 columns
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "--workspace", str(folder / ".ftod"), *args],
        cwd=folder,
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    assert ftod(tmp_path, "init", str(tmp_path)).returncode == 0
    return tmp_path


def test_escape_control_writes_escapes_and_keeps_ordinary_text() -> None:
    assert escape_control("a\x1b[31mb\x07") == "a\\x1b[31mb\\x07"
    assert escape_control("csi \x9b2J, bidi \u202e") == "csi \\x9b2J, bidi \\u202e"
    assert escape_control("line\nnext\ttab") == "line\\x0anext\\x09tab"
    assert escape_control("line\nnext\ttab", keep_lines=True) == "line\nnext\ttab"
    assert escape_control("Café — 東京 [red]") == "Café — 東京 [red]"


def test_a_run_imported_from_a_folder_with_escape_sequences_prints_them_escaped(
    folder: Path,
) -> None:
    log = folder / ESC_TITLE / "trainer_state.json"
    log.parent.mkdir()
    log.write_text(TRAINER_STATE, encoding="utf-8")
    imported = ftod(folder, "runs", "import", str(log.parent))
    assert imported.returncode == 0, imported.stderr
    run_id = imported.stdout.decode().splitlines()[0]

    stored = json.loads((folder / ".ftod" / "runs" / run_id / "run.json").read_text())
    assert "\x1b" not in stored["name"] and "\x07" not in stored["name"]
    assert stored["name"].startswith("\\x1b]0;owned\\x07\\x1b[31mred")

    for args in (("runs", "list"), ("runs", "show", run_id)):
        shown = ftod(folder, *args)
        assert shown.returncode == 0, shown.stderr
        assert b"\x1b" not in shown.stdout and b"\x07" not in shown.stdout, args
        assert b"\\x1b]0;owned" in shown.stdout, args


def test_control_characters_in_a_stored_name_are_escaped_when_listed(folder: Path) -> None:
    # A run dir written by an older ftod or another tool: the name in run.json is raw.
    log = folder / "plain" / "trainer_state.json"
    log.parent.mkdir()
    log.write_text(TRAINER_STATE, encoding="utf-8")
    run_id = ftod(folder, "runs", "import", str(log)).stdout.decode().splitlines()[0]
    run_json = folder / ".ftod" / "runs" / run_id / "run.json"
    record: dict[str, Any] = json.loads(run_json.read_text())
    record["name"] = ESC_TITLE
    run_json.write_text(json.dumps(record))
    with_bracket = ftod(folder, "runs", "show", run_id)
    assert with_bracket.returncode == 0, with_bracket.stderr
    assert b"\x1b" not in with_bracket.stdout
    assert b"\\x1b[31mred" in with_bracket.stdout  # rich did not eat "[31mred" as markup
    as_json = ftod(folder, "runs", "show", run_id, "--json")
    assert b"\x1b" not in as_json.stdout
    assert json.loads(as_json.stdout)["name"] == ESC_TITLE


def test_a_typed_run_name_with_control_characters_is_refused(folder: Path) -> None:
    log = folder / "trainer_state.json"
    log.write_text(TRAINER_STATE, encoding="utf-8")
    refused = ftod(folder, "runs", "import", str(log), "--name", ESC_TITLE)
    assert refused.returncode == 2, refused.stderr
    assert b"\x1b" not in refused.stderr and b"run name" in refused.stderr
    assert not any((folder / ".ftod" / "runs").glob("*/run.json"))

    config = folder / "run.yaml"
    config.write_text(
        yaml.safe_dump({"name": ESC_TITLE, "base_model": str(BASE_MODEL), "dataset": "missing@1"}),
        encoding="utf-8",
    )
    from_config = ftod(folder, "train", str(config), "--detach")
    assert from_config.returncode == 2, from_config.stderr
    assert b"run name" in from_config.stderr and b"\x1b" not in from_config.stderr
    config.write_text(
        yaml.safe_dump({"name": "ok", "base_model": str(BASE_MODEL), "dataset": "missing@1"}),
        encoding="utf-8",
    )
    from_option = ftod(folder, "train", str(config), "--detach", "--name", "bad\x07name")
    assert from_option.returncode == 2, from_option.stderr
    assert b"run name" in from_option.stderr
    assert not any((folder / ".ftod" / "runs").glob("*/run.json"))


def test_data_check_prints_a_file_name_with_escape_sequences_escaped(folder: Path) -> None:
    data = folder / f"{ESC_TITLE}.jsonl"
    data.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n" + "{oops\n",
        encoding="utf-8",
    )
    checked = ftod(folder, "data", "check", str(data))
    assert checked.returncode == 1, checked.stderr  # the broken line is an error
    assert b"\x1b" not in checked.stdout and b"\x07" not in checked.stdout
    assert b"\\x1b]0;owned\\x07\\x1b[31mred.jsonl" in checked.stdout


def test_prompt_text_from_a_file_is_printed_escaped(folder: Path) -> None:
    prompt = folder / "prompt.yaml"
    prompt.write_text(
        yaml.safe_dump({"system": f"Be brief.{ESC_TITLE}\nSecond line.", "max_new_tokens": 8}),
        encoding="utf-8",
    )
    assert ftod(folder, "prompt", "add", "sly", "--file", str(prompt)).returncode == 0
    for args in (("prompt", "show", "sly"), ("prompt", "list")):
        shown = ftod(folder, *args)
        assert shown.returncode == 0, shown.stderr
        assert b"\x1b" not in shown.stdout and b"\x07" not in shown.stdout, args
        assert b"Be brief.\\x1b]0;owned" in shown.stdout, args
