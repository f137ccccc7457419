"""print_json, the one printer of --json: strict JSON (no NaN/Infinity tokens), terminal-safe."""

from __future__ import annotations

import json
import math
from typing import Any

import click
from click.testing import CliRunner

from tui.cli_common import print_json


def printed(payload: Any) -> str:
    @click.command()
    def show() -> None:
        print_json(payload)

    result = CliRunner().invoke(show, [])
    assert result.exit_code == 0, result.output
    return result.output


def refuse(token: str) -> Any:
    raise ValueError(token)


def test_non_finite_numbers_become_null_at_any_depth() -> None:
    text = printed(
        {"loss": math.nan, "nested": [{"inf": math.inf}, (-math.inf, 1.5)], "ok": 2, "s": "nan"}
    )
    assert json.loads(text, parse_constant=refuse) == {
        "loss": None,
        "nested": [{"inf": None}, [None, 1.5]],
        "ok": 2,
        "s": "nan",
    }


def test_control_characters_never_reach_the_terminal_raw() -> None:
    name = "run\x1b[31m \x9b2J café"
    text = printed({"name": name})
    assert "\x1b" not in text and "\x9b" not in text
    assert "café" in text  # other text stays readable
    assert json.loads(text)["name"] == name
