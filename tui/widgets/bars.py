"""Horizontal bar charts drawn with Rich: label, bar scaled to the largest, count, share."""

from __future__ import annotations

from collections.abc import Sequence

from rich.bar import Bar
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from tui.formatting import format_count, format_share


def bar_table(rows: Sequence[tuple[str, int]], *, color: str = "green") -> RenderableType:
    """A grid whose bar column takes the width left over, so it fits 80 columns or 200."""
    if not rows:
        return Text("nothing to show", style="dim")
    largest = max(count for _, count in rows) or 1
    total = sum(count for _, count in rows)
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column("label", no_wrap=True, max_width=20, overflow="ellipsis")
    grid.add_column("bar", ratio=1)
    grid.add_column("count", justify="right", no_wrap=True)
    grid.add_column("share", justify="right", no_wrap=True, style="dim")
    for label, count in rows:
        grid.add_row(
            label,
            Bar(largest, 0, count, color=color, bgcolor="grey19"),
            format_count(count),
            format_share(count, total),
        )
    return grid


class BarChart(Static):
    """A titled bar chart; `show` replaces its rows."""

    DEFAULT_CSS = """
    BarChart {
        height: auto;
        margin-bottom: 1;
    }
    """

    def __init__(self, title: str, *, color: str = "green", id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._title = title
        self._color = color

    def show(self, rows: Sequence[tuple[str, int]], note: str = "") -> None:
        heading = Text.assemble((self._title, "bold"), (f"  {note}" if note else "", "dim"))
        self.update(Group(heading, bar_table(rows, color=self._color)))
