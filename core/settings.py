"""Workspace settings: `.ftod/settings.toml`, read in one place.

Every number ftod assumes on the user's behalf (prices, rates, checklist thresholds, volatile
terms) may be set here. A setting that is present but wrong is refused, never ignored: an
ignored price or threshold would silently change a decision. A missing file or key is the
default, and callers show the value they used as an assumption.

    [decide]
    enough_examples = 200          # clean examples needed before training
    prompt_enough_share = 0.9      # the baseline passes this share: the prompt is enough
    volatile_share = 0.05          # knowledge audit: most assistant turns with volatile facts

    [audit]
    volatile_terms = ["Growth plan", "Acme Care"]

    [cost]
    gpu_hour_usd = 1.2
    electricity_usd_per_kwh = 0.3
    input_usd_per_mtok = 0.15
    output_usd_per_mtok = 0.6
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store.errors import InputError

SETTINGS_FILENAME = "settings.toml"
# A settings file is a few lines; anything this large is not one.
MAX_SETTINGS_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class WorkspaceSettings:
    """The parsed settings file (empty when there is none) and where it came from."""

    values: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def section(self, name: str) -> Mapping[str, Any]:
        value = self.values.get(name, {})
        if not isinstance(value, Mapping):
            raise InputError(
                f"{self._where()}: [{name}] must be a table of settings",
                title="Bad workspace settings",
                field=name,
            )
        return value

    def number(
        self,
        section: str,
        key: str,
        default: float,
        *,
        low: float = 0.0,
        high: float = math.inf,
    ) -> float:
        """`[section] key` as a finite number within [low, high], else `default`."""
        value = self.section(section).get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(section, key, f"must be a number, not {value!r}")
        number = float(value)
        if not math.isfinite(number) or not low <= number <= high:
            raise self._bad(section, key, f"must be between {low:g} and {high:g}, not {value!r}")
        return number

    def is_set(self, section: str, key: str) -> bool:
        return self.section(section).get(key) is not None

    def strings(self, section: str, key: str) -> tuple[str, ...]:
        """`[section] key` as a list of non-empty strings (none when absent)."""
        value = self.section(section).get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise self._bad(section, key, "must be a list of non-empty strings")
        return tuple(value)

    def _where(self) -> str:
        return f"workspace settings {self.path}" if self.path else "workspace settings"

    def _bad(self, section: str, key: str, problem: str) -> InputError:
        return InputError(
            f"{self._where()}: [{section}] {key} {problem}",
            title="Bad workspace settings",
            field=f"{section}.{key}",
        )


def load_settings(workspace_root: Path | None) -> WorkspaceSettings:
    """The settings of the workspace whose `.ftod/` folder is `workspace_root`."""
    if workspace_root is None:
        return WorkspaceSettings()
    path = workspace_root / SETTINGS_FILENAME
    if not path.exists():
        return WorkspaceSettings(path=path)
    if not path.is_file():
        raise InputError(f"workspace settings {path}: not a regular file")
    if path.stat().st_size > MAX_SETTINGS_BYTES:
        raise InputError(f"workspace settings {path}: larger than 1 MiB, not a settings file")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(
            f"workspace settings {path}: not valid TOML ({error})", title="Bad workspace settings"
        ) from error
    return WorkspaceSettings(values=values, path=path)
