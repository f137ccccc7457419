"""The `/` search line: hidden until asked for, docked above the footer."""

from __future__ import annotations

from textual.widgets import Input


class SearchBar(Input):
    """An Input that screens show on `/`; escape is handled by the screen (close and clear)."""

    DEFAULT_CSS = """
    SearchBar {
        dock: bottom;
        display: none;
    }
    SearchBar.-open {
        display: block;
    }
    """

    def __init__(self, placeholder: str, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(placeholder=placeholder, id=id)

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def open(self) -> None:
        self.add_class("-open")
        self.focus()

    def close(self) -> None:
        self.remove_class("-open")
        self.value = ""
