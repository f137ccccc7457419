"""The `?` modal: the keys that work on the screen it was opened from."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import ActiveBinding, Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

# Textual's own screen bindings that say nothing about ftod.
HIDDEN_ACTIONS = frozenset({"screen.copy_text", "copy_text"})


@dataclass(frozen=True, slots=True)
class HelpEntry:
    group: str
    keys: str
    description: str
    tooltip: str


def help_entries(app: App[Any], screen: Screen[Any]) -> list[HelpEntry]:
    """The active bindings of `screen` (focused widget, screen, app), grouped and deduplicated."""
    return collect_entries(app, screen, screen.active_bindings.values())


def collect_entries(
    app: App[Any], screen: Screen[Any], bindings: Iterable[ActiveBinding]
) -> list[HelpEntry]:
    merged: dict[tuple[str, str], list[str]] = {}
    tooltips: dict[tuple[str, str], str] = {}
    order: list[tuple[str, str]] = []
    for active in bindings:
        binding = active.binding
        if binding.system or not binding.description or not active.enabled:
            continue
        if binding.action in HIDDEN_ACTIONS:
            continue
        if active.node is app:
            group = "Everywhere"
        elif active.node is screen:
            group = "This screen"
        else:
            group = type(active.node).__name__.removeprefix("Ftod")
        key = (group, binding.description)
        if key not in merged:
            merged[key] = []
            order.append(key)
        merged[key].append(app.get_key_display(binding))
        tooltips.setdefault(key, binding.tooltip)
    rank = {"This screen": 0, "Everywhere": 2}
    order.sort(key=lambda item: rank.get(item[0], 1))
    return [HelpEntry(g, " ".join(merged[(g, d)]), d, tooltips[(g, d)]) for g, d in order]


def help_table(entries: Sequence[HelpEntry]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column("keys", style="bold", no_wrap=True)
    table.add_column("what")
    group = None
    for entry in entries:
        if entry.group != group:
            if group is not None:
                table.add_row("", "")
            group = entry.group
            table.add_row(Text(entry.group, style="underline"), "")
        what = Text(entry.description)
        if entry.tooltip:
            what.append(f" — {entry.tooltip}", style="dim")
        table.add_row(entry.keys, what)
    return table


class HelpScreen(ModalScreen[None]):
    """Lists the bindings handed to it; escape, q or ? closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close help", id="help.close"),
        Binding("j", "scroll_down", "Down", show=False, id="help.down"),
        Binding("k", "scroll_up", "Up", show=False, id="help.up"),
    ]

    def __init__(self, title: str, entries: Sequence[HelpEntry]) -> None:
        super().__init__()
        self.help_title = title
        self.entries = tuple(entries)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog", classes="dialog") as dialog:
            dialog.border_title = f"Keys · {self.help_title}"
            dialog.border_subtitle = "escape closes"
            yield Static(help_table(self.entries), id="help-table")

    def action_close(self) -> None:
        self.dismiss()

    def action_scroll_down(self) -> None:
        self.query_one("#help-dialog", VerticalScroll).scroll_down()

    def action_scroll_up(self) -> None:
        self.query_one("#help-dialog", VerticalScroll).scroll_up()
