"""The `ftod` command line: contracts (JSON shapes, exit codes) and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import chat, clean_rows
from tui.cli import main

ROOT = Path(__file__).resolve().parent.parent


def ftod(*args: str, workspace: Path | None = None) -> Any:
    runner = CliRunner()
    prefix = ["--workspace", str(workspace)] if workspace else []
    return runner.invoke(main, [*prefix, *args], catch_exceptions=False)


def test_version_and_help() -> None:
    assert ftod("--version").output.startswith("ftod, version")
    result = ftod("--help")
    assert result.exit_code == 0 and "data" in result.output and "demo" in result.output
    assert "check" in ftod("data", "--help").output


def test_init_then_add_list_show_export(tmp_path: Path, jsonl_file: Callable[..., Path]) -> None:
    result = ftod("init", str(tmp_path / "proj"))
    assert result.exit_code == 0 and "Created" in result.output
    assert "already exists" in ftod("init", str(tmp_path / "proj")).output
    ws = tmp_path / "proj"
    rows: list[Any] = [*clean_rows(), "{oops"]
    path = jsonl_file(rows)
    added = ftod("data", "add", str(path), "--name", "support", workspace=ws)
    assert added.exit_code == 0, added.output
    assert "Added support@1: 11 rows (10 valid), 1 errors" in added.output
    same = ftod("data", "add", str(path), "--name", "support", "--json", workspace=ws)
    assert json.loads(same.output)["created"] is False and json.loads(same.output)["version"] == 1
    assert (
        "same content as support@1"
        in ftod("data", "add", str(path), "--name", "support", workspace=ws).output
    )

    listing = json.loads(ftod("data", "list", "--json", workspace=ws).output)
    assert [(d["name"], d["versions"], d["rows"], d["errors"]) for d in listing] == [
        ("support", 1, 11, 1)
    ]
    shown = json.loads(ftod("data", "show", "support@1", "--json", workspace=ws).output)
    assert shown["ref"] == "support@1" and shown["summary"]["labels"]["shipping"] == 2
    assert shown["findings"] == [
        {
            "check": "invalid_json",
            "severity": "error",
            "lines": [11],
            "message": shown["findings"][0]["message"],
        }
    ]
    assert "support@1" in ftod("data", "show", "support", workspace=ws).output
    out = tmp_path / "export.jsonl"
    exported = ftod("data", "export", "support@1", "-o", str(out), workspace=ws)
    assert exported.exit_code == 0 and len(out.read_text().splitlines()) == 10

    split = ftod(
        "data",
        "split",
        "support",
        "--val",
        "0.2",
        "--test",
        "0.2",
        "--seed",
        "1",
        "--json",
        workspace=ws,
    )
    manifest = json.loads(split.output)
    assert sum(s["rows"] for s in manifest["splits"].values()) == 10
    assert set(manifest["splits"]["train"]) >= {"rows", "sha256"}
    val_out = tmp_path / "val.jsonl"
    assert (
        ftod(
            "data", "export", "support@1", "--split", "val", "-o", str(val_out), workspace=ws
        ).exit_code
        == 0
    )
    assert len(val_out.read_text().splitlines()) == manifest["splits"]["val"]["rows"]


def test_check_json_contract_and_exit_codes(jsonl_file: Callable[..., Path]) -> None:
    clean = ftod("data", "check", str(jsonl_file(clean_rows(), name="clean.jsonl")), "--json")
    assert clean.exit_code == 0
    payload = json.loads(clean.output)
    assert {"path", "rows", "sha256", "findings"} <= set(payload) and payload["findings"] == []

    rows: list[Any] = [*clean_rows(), clean_rows()[0], chat("Hello", "")]
    dirty = ftod("data", "check", str(jsonl_file(rows)), "--json")
    assert dirty.exit_code == 1
    findings = json.loads(dirty.output)["findings"]
    assert {(f["check"], tuple(f["lines"])) for f in findings} == {
        ("exact_duplicate", (1, 11)),
        ("empty_content", (12,)),
    }
    for finding in findings:
        assert set(finding) >= {"check", "severity", "lines", "message"}
    human = ftod("data", "check", str(jsonl_file(rows)))
    assert human.exit_code == 1 and "exact_duplicate" in human.output


def test_check_against_reports_other(jsonl_file: Callable[..., Path]) -> None:
    train = jsonl_file(clean_rows(), name="train.jsonl")
    held_out = jsonl_file(
        [clean_rows()[3], chat("A genuinely new question about lamps?", "A new answer.")],
        name="eval.jsonl",
    )
    result = ftod("data", "check", str(held_out), "--against", str(train), "--json")
    assert result.exit_code == 1
    leak = json.loads(result.output)["findings"][0]
    assert leak["check"] == "leakage" and leak["lines"] == [1]
    assert leak["other"] == {"path": str(train), "lines": [4]}


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        (lambda d: d / "missing.jsonl", "no such file"),
        (lambda d: d, "folder"),
        (lambda d: ((d / "e.jsonl").write_bytes(b"") and d / "e.jsonl") or d / "e.jsonl", "empty"),
        (lambda d: (d / "b.bin").write_bytes(b"\x00\x01\x02" * 100) and d / "b.bin", "binary"),
    ],
)
def test_unusable_input_exits_2_with_a_message(
    tmp_path: Path, setup: Callable[[Path], Path], fragment: str
) -> None:
    path = setup(tmp_path)
    result = CliRunner().invoke(main, ["data", "check", str(path)])
    assert result.exit_code == 2
    assert fragment in result.output and "Traceback" not in result.output
    as_json = CliRunner().invoke(main, ["data", "check", str(path), "--json"])
    assert as_json.exit_code == 2
    assert fragment in json.loads(as_json.output.splitlines()[0])["error"]["message"]


def test_usage_errors_exit_2(jsonl_file: Callable[..., Path]) -> None:
    path = str(jsonl_file(clean_rows()))
    assert CliRunner().invoke(main, ["data", "check", path, "--max-seq-len", "0"]).exit_code == 2
    assert CliRunner().invoke(main, ["data", "check", path, "--max-seq-len", "abc"]).exit_code == 2
    assert CliRunner().invoke(main, ["data", "nope"]).exit_code == 2


def test_no_workspace_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "data", "list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if k != "FTOD_WORKSPACE"},
            "PYTHONPATH": str(ROOT),
        },
    )
    assert result.returncode == 2
    assert "ftod init" in result.stderr and "Traceback" not in result.stderr


def test_unknown_dataset_and_version(tmp_path: Path, jsonl_file: Callable[..., Path]) -> None:
    ftod("init", str(tmp_path))
    ftod("data", "add", str(jsonl_file(clean_rows())), "--name", "support", workspace=tmp_path)
    missing = ftod("data", "show", "nope", workspace=tmp_path)
    assert missing.exit_code == 2 and "No dataset named 'nope'" in missing.output
    bad_version = ftod("data", "show", "support@9", workspace=tmp_path)
    assert bad_version.exit_code == 2 and "no version 9" in bad_version.output


def test_console_script_runs_from_a_real_process(
    tmp_path: Path, jsonl_file: Callable[..., Path]
) -> None:
    """The installed `ftod` entry point, as a user runs it (no CliRunner)."""
    ftod_bin = Path(sys.executable).parent / "ftod"
    if not ftod_bin.exists():
        pytest.skip("ftod console script not installed in this environment")
    path = jsonl_file([*clean_rows(), "{broken"])
    result = subprocess.run(
        [str(ftod_bin), "data", "check", str(path), "--json"], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["findings"][0]["check"] == "invalid_json"


def test_show_counts_findings_and_rows_separately(
    tmp_path: Path, jsonl_file: Callable[..., Path]
) -> None:
    ftod("init", str(tmp_path))
    rows: list[Any] = [*clean_rows(), clean_rows()[0], clean_rows()[0], clean_rows()[1]]
    ftod("data", "add", str(jsonl_file(rows)), "--name", "support", workspace=tmp_path)
    shown = json.loads(ftod("data", "show", "support", "--json", workspace=tmp_path).output)
    assert shown["finding_counts"] == [
        {"check": "exact_duplicate", "severity": "warning", "findings": 2, "rows": 5}
    ]
