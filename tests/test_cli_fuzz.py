"""A fuzz pass over every command that takes a file, a name or a number: no exit 70.

The commands and their parameters are found by walking the click group, so a new command is
fuzzed without editing this file. Each parameter in turn gets hostile values (a folder, a FIFO,
a device, an empty, binary, deeply nested or huge-integer file; names with terminal escapes,
NUL bytes, path traversal; numbers out of every range) while the other required parameters
get plain values. Whatever the command makes of it, it must answer as a program that met bad
input does (exit 1, 2 or 3 with a message), never with "Internal error … a bug in ftod" (70),
a traceback, or a hang.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import click
import pytest
from click.testing import CliRunner

from tests.conftest import clean_rows, write_jsonl
from tui.cli import main
from tui.cli_common import EXIT_INTERNAL

# Commands that open the dashboard or follow forever: they take no hostile file or name that
# another command does not already take through the same code.
SKIPPED = {"demo", "review", "runs watch"}
PER_CALL_SECONDS = 60

BAD_NAMES = (
    "\x1b]0;pwned\x07\x1b[31mred",
    "",
    "../../etc/passwd",
    "a" * 5000,
    "nul\x00byte",
    "@",
    "support@99999999999999999999",
    "support@-1",
)
BAD_INTS = ("-1", "0", "2147483648", "99999999999999999999999", "nan")
BAD_FLOATS = ("nan", "inf", "-inf", "-1", "1e400")


@dataclass(frozen=True)
class Call:
    command: str
    param: str
    value: str
    argv: tuple[str, ...]


def hostile_files(root: Path) -> dict[str, Path]:
    root.mkdir()
    files = {
        "missing": root / "missing.jsonl",
        "folder": root / "folder",
        "fifo": root / "fifo.jsonl",
        "empty": root / "empty.jsonl",
        "binary": root / "binary.jsonl",
        "deep": root / "deep.jsonl",
        "bigint": root / "bigint.jsonl",
        "deep_yaml": root / "deep.yaml",
    }
    files["folder"].mkdir()
    os.mkfifo(files["fifo"])
    files["empty"].write_bytes(b"")
    files["binary"].write_bytes(bytes(range(256)) * 64)
    files["deep"].write_text("[" * 100_000 + "]" * 100_000 + "\n")
    files["bigint"].write_text('{"messages": [], "step": ' + "9" * 400 + "}\n")
    files["deep_yaml"].write_text("a: " + "[" * 50_000 + "]" * 50_000 + "\n")
    for device in ("/dev/null", "/dev/zero"):
        if Path(device).exists():
            files[device] = Path(device)
    return files


def fuzzable(command: click.Command) -> list[click.Parameter]:
    return [
        param
        for param in command.params
        if not getattr(param, "is_flag", False) and param.name not in {"as_json", "help"}
    ]


def commands(
    group: click.Group = main, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        path = " ".join((*prefix, name))
        if path in SKIPPED:
            continue
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))
        else:
            yield path, command


def plain_value(param: click.Parameter, good_file: Path, fresh: Path) -> str:
    name = param.name or ""
    if isinstance(param.type, click.Path):
        # Outputs must be new paths; inputs a small usable file.
        return str(fresh) if name in {"output", "destination", "folder"} else str(good_file)
    if isinstance(param.type, click.Choice):
        return str(param.type.choices[0])
    if isinstance(param.type, click.types.IntParamType):
        return "1"
    if isinstance(param.type, click.types.FloatParamType):
        return "0.1"
    return "support@1"


def argv_for(command_path: str, command: click.Command, values: dict[str, str]) -> tuple[str, ...]:
    argv: list[str] = command_path.split()
    for param in command.params:
        if param.name not in values:
            continue
        value = values[param.name]
        if isinstance(param, click.Argument):
            argv += ["--", value] if value.startswith("-") else [value]
        else:
            argv += [param.opts[0], value]
    return tuple(argv)


def calls(files: dict[str, Path], good_file: Path, scratch: Path) -> Iterator[Call]:
    counter = 0
    for command_path, command in commands():
        params = fuzzable(command)
        for target in params:
            if isinstance(target.type, click.Path):
                bad_values = [str(path) for path in files.values()]
            elif isinstance(target.type, click.types.IntParamType):
                bad_values = list(BAD_INTS)
            elif isinstance(target.type, click.types.FloatParamType):
                bad_values = list(BAD_FLOATS)
            elif isinstance(target.type, click.Choice):
                continue
            else:
                bad_values = list(BAD_NAMES)
            for bad in bad_values:
                counter += 1
                values: dict[str, str] = {}
                for param in params:
                    if param is target:
                        values[param.name or ""] = bad
                    elif param.required:
                        fresh = scratch / f"out-{counter}"
                        values[param.name or ""] = plain_value(param, good_file, fresh)
                yield Call(
                    command_path, target.name or "", bad, argv_for(command_path, command, values)
                )


def _shown(argv: tuple[str, ...]) -> str:
    return " ".join(repr(arg if len(arg) <= 60 else arg[:60] + "…") for arg in argv)


class Hung(Exception):
    pass


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise Hung


@pytest.fixture(scope="module")
def fuzz_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Call]]:
    root = tmp_path_factory.mktemp("fuzz")
    project = root / "project"
    runner = CliRunner()
    assert runner.invoke(main, ["init", str(project)]).exit_code == 0
    good = write_jsonl(root / "good.jsonl", clean_rows())
    workspace = project / ".ftod"
    added = runner.invoke(
        main, ["--workspace", str(workspace), "data", "add", str(good), "--name", "support"]
    )
    assert added.exit_code in (0, 1), added.output
    files = hostile_files(root / "hostile")
    scratch = root / "scratch"
    scratch.mkdir()
    return workspace, list(calls(files, good, scratch))


def test_the_fuzz_reaches_every_command(fuzz_setup: tuple[Path, list[Call]]) -> None:
    _, planned = fuzz_setup
    fuzzed = {call.command for call in planned}
    every = {path for path, command in commands() if fuzzable(command)}
    assert fuzzed == every
    assert {"data add", "train", "gate", "prompt add", "runs import", "eval import"} <= fuzzed


def test_no_hostile_input_gives_an_internal_error(
    fuzz_setup: tuple[Path, list[Call]], monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace, planned = fuzz_setup
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FTOD_BUSY_TIMEOUT", "5")
    monkeypatch.chdir(workspace.parent)
    runner = CliRunner()
    failures: list[str] = []
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for call in planned:
            signal.alarm(PER_CALL_SECONDS)
            try:
                result = runner.invoke(main, ["--workspace", str(workspace), *call.argv])
            except Hung:
                failures.append(f"{_shown(call.argv)}: still running after {PER_CALL_SECONDS} s")
                continue
            finally:
                signal.alarm(0)
            crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
            if result.exit_code == EXIT_INTERNAL or crashed or "a bug in ftod" in result.output:
                failures.append(
                    f"{_shown(call.argv)} -> exit {result.exit_code}: "
                    f"{(result.output or repr(result.exception))[-300:]}"
                )
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not failures, f"{len(failures)} of {len(planned)} calls failed:\n" + "\n".join(
        failures[:40]
    )
