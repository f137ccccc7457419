"""What every ftod screen shares: where data comes from, going back, and the search line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, cast

from rich.text import Text
from textual import on
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerState

from store.datasets import DatasetRepository
from store.errors import FtodError
from store.workspace import Workspace
from tui.widgets.search import SearchBar
from tui.widgets.table import FtodTable


class DataSource(Protocol):
    """What screens need from the app: the workspace and a repository (opened lazily).

    `repository()` may open the store (and run migrations), so workers call it from their
    thread, never the UI thread.
    """

    @property
    def workspace(self) -> Workspace: ...

    def repository(self) -> DatasetRepository: ...


def data_source(app: App[object]) -> DataSource:
    """The running FtodApp seen through the DataSource protocol (kept free of an app import)."""
    return cast(DataSource, app)


def error_text(error: BaseException | None) -> str:
    """The sentence a person reads for an error: FtodError's message, else its type and text."""
    if isinstance(error, FtodError):
        return error.message
    return f"{type(error).__name__}: {error}" if error is not None else "unknown error"


class FtodScreen(Screen[None]):
    """Base of the full-page screens: `escape` goes back to the previous one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape", "back", "Back", id="screen.back", tooltip="Go back to the previous screen"
        ),
    ]

    @property
    def source(self) -> DataSource:
        return data_source(self.app)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            # The first screen has nowhere to go back to; hide the binding there.
            return len(self.app.screen_stack) > 1 or self.has_open_search()
        return True

    def has_open_search(self) -> bool:
        """Screens with a search line override this so escape closes it first."""
        return False

    def close_search(self) -> None:
        """Close and clear the search line (screens with one override this)."""

    def load_failed(self, error: BaseException | None) -> None:
        """A worker of this screen failed; clear loading state (the app shows the error)."""

    @dataclass
    class LoadFailed(Message):
        """A worker of a screen failed; bubbles to the app, which shows the error."""

        error: BaseException | None

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker.StateChanged does not bubble: the screen turns a failure into LoadFailed.
        if event.state == WorkerState.ERROR and event.worker.node is self:
            self.load_failed(event.worker.error)
            self.post_message(self.LoadFailed(event.worker.error))

    def action_back(self) -> None:
        if self.has_open_search():
            self.close_search()
            return
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()


class FilteredListScreen(FtodScreen):
    """A list screen whose `/` filter line refills its table as the text changes, and whose
    failed read is said on its status line (after it, only `r` retries: no modal loop).

    Subclasses provide `table`, `search_bar`, `status`, `_fill_table` (which reads the
    filter), the `_load` worker and `ITEMS`, what the list holds ("datasets").
    """

    ITEMS: ClassVar[str] = "items"
    _failed = False

    def _load(self, source: DataSource) -> object:
        """Start the worker that reads the list (subclasses decorate theirs with @work)."""
        raise NotImplementedError

    def reload(self) -> None:
        self._failed = False
        self._load(self.source)

    def action_reload(self) -> None:
        self.reload()

    def on_screen_resume(self) -> None:
        # Back from another screen: the CLI may have added items meanwhile.
        if not self._failed:
            self.reload()

    @property
    def status(self) -> Static:
        raise NotImplementedError

    def load_failed(self, error: BaseException | None) -> None:
        self._failed = True
        self.table.loading = False
        self.status.update(
            Text.assemble(
                (f"Could not read the {self.ITEMS}: ", "bold red"),
                error_text(error),
                (" (r retries)", "dim"),
            )
        )

    @property
    def table(self) -> FtodTable:
        raise NotImplementedError

    @property
    def search_bar(self) -> SearchBar:
        raise NotImplementedError

    def _fill_table(self) -> None:
        raise NotImplementedError

    def action_search(self) -> None:
        self.search_bar.open()

    def has_open_search(self) -> bool:
        return self.search_bar.is_open

    def close_search(self) -> None:
        self.search_bar.close()
        self._fill_table()
        self.table.focus()

    @on(Input.Changed)
    def _filter_changed(self, event: Input.Changed) -> None:
        if event.input is self.search_bar:
            self._fill_table()

    @on(Input.Submitted)
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if event.input is self.search_bar:
            self.table.focus()
