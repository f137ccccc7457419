"""Specs are data, scorer files are code: the attacks of issue #10 §1 (a gate spec naming
`custom:shutil:rmtree`, `--scorer custom:builtins:exec`) are refused with exit 2 before
anything runs, a scorer file the user names (beside them, in the current folder) loads, and
unbounded scorer settings and schema files are refused (§7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner, Result

from core.evals.scorers import load_scorer_files
from tests.conftest import chat, write_jsonl
from tui.cli import main

ROWS = 6
MARKER_SCORER = """
from pathlib import Path
from core.evals.scorers import scorer

@scorer("leaves_marker")
def leaves_marker(output, reference, example):
    Path({marker!r}).write_text("ran")
    return True
"""
POLITE_SCORER = """
from core.evals.scorers import scorer

@scorer("polite")
def polite(output, reference, example):
    return "please" in output.lower()
"""


def invoke(workspace: Any, *args: str) -> Result:
    return CliRunner().invoke(main, ["--workspace", str(workspace.root), *args])


def count(workspace: Any, table: str) -> int:
    connection = duckdb.connect(str(workspace.database_path), read_only=True)
    try:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    finally:
        connection.close()
    assert row is not None
    return int(row[0])


@pytest.fixture(autouse=True)
def empty_registry() -> Iterator[None]:
    # In-process CLI runs register scorers in this process; none may leak into other tests.
    yield
    load_scorer_files([])


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A folder with a file in it: what `shutil.rmtree(output)` would have emptied."""
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    return folder


@pytest.fixture
def evals(tmp_path: Path, victim: Path) -> Any:
    """A workspace with `tiny@1` and two evals whose every output is the victim's path."""
    from store.workspace import init_workspace

    workspace, _ = init_workspace(tmp_path / "project")
    rows = [chat(f"question {i} about order {i * 97}", f"answer {i}") for i in range(ROWS)]
    data = write_jsonl(tmp_path / "tiny.jsonl", rows)
    added = invoke(workspace, "data", "add", str(data), "--name", "tiny")
    assert added.exit_code == 0, added.output
    outputs = write_jsonl(
        tmp_path / "outputs.jsonl", [{"line": i + 1, "output": str(victim)} for i in range(ROWS)]
    )
    for label in ("base", "tuned"):
        imported = invoke(
            workspace, "eval", "import", "--data", "tiny@1", "--outputs", str(outputs), "--label",
            label,
        )  # fmt: skip
        assert imported.exit_code == 0, imported.output
    return workspace


def test_a_gate_spec_naming_rmtree_is_refused_and_touches_nothing(
    evals: Any, tmp_path: Path, victim: Path
) -> None:
    spec = tmp_path / "gate.yaml"
    spec.write_text('scorer: "custom:shutil:rmtree"\nrules:\n  - {slice: overall, kind: target}\n')
    result = invoke(
        evals, "gate", "--spec", str(spec), "--baseline", "base", "--candidate", "tuned"
    )
    assert result.exit_code == 2, result.output
    assert "custom:shutil:rmtree" in result.output and "--scorer-file" in result.output
    assert (victim / "thesis.txt").read_text() == "years of work"
    assert count(evals, "gate_results") == 0


def test_a_gate_spec_is_checked_whole_before_any_scorer_runs(
    evals: Any, tmp_path: Path, victim: Path
) -> None:
    marker = tmp_path / "marker"
    scorers = tmp_path / "marker_scorer.py"
    scorers.write_text(MARKER_SCORER.format(marker=str(marker)))
    spec = tmp_path / "gate.yaml"
    spec.write_text(
        "rules:\n"
        "  - {slice: overall, kind: floor, min: 0.5, scorer: 'custom:leaves_marker'}\n"
        "  - {slice: overall, kind: floor, min: 0.5, scorer: 'custom:unregistered'}\n"
    )
    args = ("--spec", str(spec), "--baseline", "base", "--candidate", "tuned")
    refused = invoke(evals, "gate", *args, "--scorer-file", str(scorers))
    assert refused.exit_code == 2, refused.output
    assert "'unregistered' is not registered" in refused.output
    assert "rule 2" in refused.output
    assert not marker.exists()
    # The same spec without the unregistered rule runs the registered scorer.
    spec.write_text(
        "rules:\n  - {slice: overall, kind: floor, min: 0.5, scorer: 'custom:leaves_marker'}\n"
    )
    passed = invoke(evals, "gate", *args, "--scorer-file", str(scorers), "--json")
    assert passed.exit_code == 0, passed.output
    assert json.loads(passed.stdout)["verdict"] == "PASS"
    assert marker.read_text() == "ran"
    assert (victim / "thesis.txt").exists()


def test_scorer_custom_builtins_exec_is_refused_in_a_real_process(
    evals: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    payload = write_jsonl(
        tmp_path / "payload.jsonl",
        [{"line": i + 1, "output": f"open({str(marker)!r}, 'w').write('x')"} for i in range(ROWS)],
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [
            sys.executable, "-m", "tui.cli", "--workspace", str(evals.root), "eval", "import",
            "--data", "tiny@1", "--outputs", str(payload), "--label", "exec",
            "--scorer", "custom:builtins:exec",
        ],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "custom:builtins:exec" not in result.stdout
    assert "no longer imports module:function" in result.stderr
    assert not marker.exists()
    assert count(evals, "evals") == 2


def test_a_scorer_file_beside_the_user_loads_and_scores(
    evals: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    (here / "myscorer.py").write_text(POLITE_SCORER)
    monkeypatch.chdir(here)
    outputs = write_jsonl(
        tmp_path / "polite.jsonl",
        [{"line": i + 1, "output": "Please wait." if i % 2 else "Wait."} for i in range(ROWS)],
    )
    result = invoke(
        evals, "eval", "import", "--data", "tiny@1", "--outputs", str(outputs), "--label", "pol",
        "--scorer", "custom:polite", "--scorer-file", "myscorer.py", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["scorers"] == [
        {
            "name": "custom",
            "as": "polite",
            "function": "polite",
            "kind": "pass_fail",
            "needs_reference": False,
        }
    ]
    (summary,) = record["scores"]
    assert (summary["scorer"], summary["mean"], summary["scored"]) == ("polite", 0.5, ROWS)


def test_scorer_files_from_the_workspace_settings(evals: Any, tmp_path: Path) -> None:
    project = evals.root.parent
    (project / "team_scorers.py").write_text(POLITE_SCORER)
    settings = evals.root / "settings.toml"
    settings.write_text('scorer_files = ["team_scorers.py"]\n')
    result = invoke(evals, "compare", "base", "tuned", "--scorer", "custom:polite", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["scorer"] == "polite"
    settings.write_text("scorer_files = 3\n")
    bad = invoke(evals, "compare", "base", "tuned")
    assert bad.exit_code == 2 and "scorer_files must be a list" in bad.output


def test_without_a_scorer_file_nothing_is_registered(evals: Any, tmp_path: Path) -> None:
    # The first command registers `polite`; the next one, naming no file, must not see it.
    scorers = tmp_path / "polite.py"
    scorers.write_text(POLITE_SCORER)
    first = invoke(evals, "compare", "base", "tuned", "--scorer", "custom:polite", "--scorer-file",
                   str(scorers))  # fmt: skip
    assert first.exit_code == 0, first.output
    second = invoke(evals, "compare", "base", "tuned", "--scorer", "custom:polite")
    assert second.exit_code == 2
    assert "'polite' is not registered (no scorer file was named)" in second.output


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("chrf:char_order=999999999", "char_order must be a whole number, at least 1 and at most"),
        ("chrf:beta=1e300", "beta must be a number, at least 0 and at most 100"),
        ("length_bounds:max_chars=99999999999", "at most 1,000,000,000"),
        ("chrf:word_order=2", "unknown setting(s) word_order"),
        ("json_schema:/dev/urandom", "not a regular file"),
        ("json_schema:/", "not a regular file"),
        ("contains:" + "x" * 10_001, "at most 10,000"),
    ],
)
def test_unbounded_scorer_settings_are_refused_fast(evals: Any, spec: str, message: str) -> None:
    started = time.monotonic()
    result = invoke(evals, "compare", "base", "tuned", "--scorer", spec)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert time.monotonic() - started < 30


def test_schema_files_must_be_small_regular_files(evals: Any, tmp_path: Path) -> None:
    fifo = tmp_path / "schema.fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.json"
    big.write_text('{"description": "' + "x" * (1 << 20) + '"}')
    for path, message in [(fifo, "not a regular file"), (big, "larger than the 1,048,576-byte")]:
        result = invoke(evals, "compare", "base", "tuned", "--scorer", f"json_schema:{path}")
        assert result.exit_code == 2, result.output
        assert message in result.output
