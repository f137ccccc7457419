"""A vertical scroll container with vim keys, for the tab panes and example sides."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll


class ScrollPane(VerticalScroll):
    """Scrolls with arrows, page keys, or j/k and g/G."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll_down", "Scroll down", show=False, id="scroll.down"),
        Binding("k", "scroll_up", "Scroll up", show=False, id="scroll.up"),
        Binding("g", "scroll_home", "Top", show=False, id="scroll.top"),
        Binding("G", "scroll_end", "Bottom", show=False, id="scroll.bottom"),
    ]
