"""Workspace settings: defaults when absent, refused (never ignored) when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import load_settings
from store.errors import InputError


def test_no_file_gives_defaults(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert settings.number("cost", "gpu_hour_usd", 2.5) == 2.5
    assert settings.strings("audit", "volatile_terms") == ()
    assert not settings.is_set("cost", "gpu_hour_usd")


def test_values_are_read_and_checked(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text(
        '[cost]\ngpu_hour_usd = 1.5\n[audit]\nvolatile_terms = ["Growth plan"]\n'
    )
    settings = load_settings(tmp_path)
    assert settings.number("cost", "gpu_hour_usd", 2.5) == 1.5
    assert settings.is_set("cost", "gpu_hour_usd")
    assert settings.strings("audit", "volatile_terms") == ("Growth plan",)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[cost]\ngpu_hour_usd = -1\n", "cost.gpu_hour_usd"),
        ('[cost]\ngpu_hour_usd = "cheap"\n', "cost.gpu_hour_usd"),
        ("[cost]\ngpu_hour_usd = inf\n", "cost.gpu_hour_usd"),
        ("[audit]\nvolatile_terms = [1]\n", "audit.volatile_terms"),
        ("cost = 3\n", "cost"),
    ],
)
def test_a_wrong_setting_is_refused_naming_it(tmp_path: Path, text: str, field: str) -> None:
    (tmp_path / "settings.toml").write_text(text)
    settings = load_settings(tmp_path)
    with pytest.raises(InputError) as caught:
        settings.number("cost", "gpu_hour_usd", 1.0)
        settings.strings("audit", "volatile_terms")
    assert caught.value.field == field


def test_not_toml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text("[cost\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_settings(tmp_path)
