"""A DataTable with vim keys and a visible "enter opens" binding."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

Cell = str | Text


class FtodTable(DataTable[Cell]):
    """Row-cursor table used by every list screen: arrows or j/k, g/G, enter opens."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter", "select_cursor", "Open", id="table.open", tooltip="Open the highlighted row"
        ),
        Binding("j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("k", "cursor_up", "Up", show=False, id="table.up"),
        Binding("g", "scroll_top", "First row", show=False, id="table.top"),
        Binding("G", "scroll_bottom", "Last row", show=False, id="table.bottom"),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
