"""Small pure formatters shared by the screens: hashes, dates, counts, paths, line lists."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

SHORT_HASH_LENGTH = 12

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
