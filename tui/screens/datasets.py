"""The first screen: every dataset with its latest version's counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from store.datasets import DatasetListing
from tui.formatting import display_path, format_count, format_when, short_hash
from tui.screens.add_dataset import AddDatasetScreen, AddResult
from tui.screens.base import DataSource, FilteredListScreen, OpenVersion
from tui.widgets.search import SearchBar
from tui.widgets.table import FtodTable

EMPTY_TEXT = Text.assemble(
    ("No datasets yet.\n\n", "bold"),
    "Add a chat JSONL (or Parquet) file from the shell:\n\n",
    ("    ftod data add FILE --name NAME\n\n", "bold green"),
    "or press ",
    ("a", "bold reverse"),
    " here to pick a file. Every row is checked (format, duplicates,\n"
    "contradictions, personal data, length) and stored as version 1.",
)

COLUMNS: tuple[tuple[str | Text, str], ...] = (
    ("name", "name"),
    (Text("vers", justify="right"), "versions"),
    (Text("rows", justify="right"), "rows"),
    ("sha256", "sha256"),
    (Text("err", justify="right"), "errors"),
    (Text("warn", justify="right"), "warnings"),
    ("created", "created"),
)


class DatasetsScreen(FilteredListScreen):
    """A table of datasets; enter opens the latest version, `a` adds a file."""

    ITEMS = "datasets"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add", id="datasets.add", tooltip="Add a JSONL or Parquet file"),
        Binding(
            "slash", "search", "Filter", id="datasets.search", tooltip="Filter datasets by name"
        ),
        Binding("r", "reload", "Reload", id="datasets.reload", tooltip="Read the list again"),
    ]

    @dataclass
    class DatasetsLoaded(Message):
        """The list of datasets, read in a worker."""

        datasets: tuple[DatasetListing, ...]

    def __init__(self) -> None:
        super().__init__()
        self._datasets: tuple[DatasetListing, ...] = ()
        self._loaded = False

    # -- typed accessors -----------------------------------------------------------------
    @property
    def table(self) -> FtodTable:
        return self.query_one("#datasets-table", FtodTable)

    @property
    def empty_panel(self) -> Static:
        return self.query_one("#datasets-empty", Static)

    @property
    def status(self) -> Static:
        return self.query_one("#datasets-status", Static)

    @property
    def search_bar(self) -> SearchBar:
        return self.query_one("#datasets-search", SearchBar)

    @property
    def datasets(self) -> tuple[DatasetListing, ...]:
        """The datasets last loaded (the command palette offers them)."""
        return self._datasets

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(id="datasets-status", classes="status-line")
        yield FtodTable(id="datasets-table")
        yield Static(EMPTY_TEXT, id="datasets-empty", classes="empty-panel")
        yield SearchBar("filter datasets by name", id="datasets-search")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "datasets"
        for label, key in COLUMNS:
            self.table.add_column(label, key=key)
        self.table.loading = True
        self.empty_panel.display = False

    # -- loading -------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="datasets")
    def _load(self, source: DataSource) -> None:
        self.post_message(self.DatasetsLoaded(tuple(source.repository().list_datasets())))

    @on(DatasetsLoaded)
    def _show_datasets(self, message: DatasetsLoaded) -> None:
        self._datasets = message.datasets
        self._loaded = True
        self.table.loading = False
        self._fill_table()
        if not self.search_bar.has_focus:
            self.table.focus()
            self.refresh_bindings()

    def _fill_table(self) -> None:
        table = self.table
        selected = self._selected_name()
        pattern = self.search_bar.value.strip().lower() if self.search_bar.is_open else ""
        shown = [d for d in self._datasets if pattern in d.name.lower()]
        table.clear()
        for listing in shown:
            table.add_row(*_row_cells(listing), key=listing.name)
        if selected is not None and selected in {d.name for d in shown}:
            table.move_cursor(row=table.get_row_index(selected))
        empty = self._loaded and not self._datasets
        self.empty_panel.display = empty
        table.display = not empty
        self.status.update(self._status_text(len(shown), pattern))

    def _status_text(self, shown: int, pattern: str) -> Text:
        total = len(self._datasets)
        text = Text()
        if pattern:
            text.append(f"{shown} of {total} datasets match ", style="bold")
            text.append(repr(pattern))
        else:
            text.append(f"{total} dataset{'s' if total != 1 else ''}", style="bold")
        text.append(f"  ·  workspace {display_path(self.source.workspace.root)}", style="dim")
        return text

    def _selected_name(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return None if key.value is None else str(key.value)

    # -- actions -------------------------------------------------------------------------
    @on(DataTable.RowSelected, "#datasets-table")
    def _open_dataset(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.post_message(OpenVersion(str(event.row_key.value)))

    def action_add(self) -> None:
        self.app.push_screen(AddDatasetScreen(), self._after_add)

    def _after_add(self, result: AddResult | None) -> None:
        if result is None:
            return
        self.notify(
            result.summary,
            title="Dataset added" if result.created else "Nothing added",
            markup=False,
        )
        self.reload()


def _row_cells(listing: DatasetListing) -> tuple[str | Text, ...]:
    return (
        Text(listing.name, style="bold"),
        Text(str(listing.versions), justify="right"),
        Text(format_count(listing.rows), justify="right"),
        Text(short_hash(listing.sha256), style="dim"),
        Text(str(listing.errors), style="bold red" if listing.errors else "dim", justify="right"),
        Text(str(listing.warnings), style="yellow" if listing.warnings else "dim", justify="right"),
        format_when(listing.created_at),
    )
