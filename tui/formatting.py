"""Small pure formatters shared by the screens: hashes, dates, counts, paths, line lists,
and the figures of a training run (durations, metrics, rates, its state).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rich.text import Text

from core.runs.monitor import RunView

SHORT_HASH_LENGTH = 12

STATE_STYLE: dict[str, str] = {
    "queued": "cyan",
    "running": "bold green",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "interrupted": "bold yellow",
}

SEVERITY_STYLES: dict[str, str] = {
    "error": "bold red",
    "warning": "yellow",
    "info": "cyan",
}


def short_hash(sha256: str) -> str:
    return sha256[:SHORT_HASH_LENGTH]


def format_when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def format_count(value: int | float) -> str:
    """Thousands separators for integers, one decimal for other numbers."""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def format_share(part: int | float, whole: int | float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"


def display_path(path: str | Path, *, cwd: Path | None = None) -> str:
    """A path as a person reads it: relative to the current folder when inside it, else ~/…"""
    location = Path(path)
    here = (cwd or Path.cwd()).resolve()
    try:
        return str(location.relative_to(here))
    except ValueError:
        pass
    home = Path.home()
    try:
        return str(Path("~") / location.relative_to(home))
    except ValueError:
        return str(location)


def format_lines(lines: Sequence[int], limit: int = 3) -> str:
    """'4, 5' or '4, 5, 9 …+3' — the first few line numbers of a finding."""
    shown = ", ".join(str(line) for line in lines[:limit])
    extra = len(lines) - limit
    return f"{shown} …+{extra}" if extra > 0 else shown


def severity_style(severity: str) -> str:
    return SEVERITY_STYLES.get(severity, "")


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def format_metric(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}"


def format_rate(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if value >= 10_000:
        return f"{value / 1000:,.0f}k"
    return f"{value:,.0f}"


def state_text(view: RunView) -> Text:
    text = Text(view.state, style=STATE_STYLE.get(view.state, ""))
    if view.reason:
        text.append(f" {view.reason}", style="red")
    return text
