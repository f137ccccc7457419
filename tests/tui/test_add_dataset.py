"""The add-dataset modal through its real worker, its inline errors, and worker failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.text import Text
from textual.message import Message
from textual.notifications import Notify
from textual.widgets import Static

from store.errors import StoreBusyError
from store.workspace import Workspace
from tests.tui.helpers import SUPPORT_LINES, make_app, press, settle, showing, write_jsonl
from tui.app import FtodApp
from tui.screens.add_dataset import AddDatasetScreen
from tui.screens.datasets import DatasetsScreen
from tui.screens.error import ErrorScreen
from tui.screens.version import VersionScreen


def text_of(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Text) else str(content)


def notifications(messages: list[Message]) -> list[str]:
    return [m.notification.message for m in messages if isinstance(m, Notify)]


async def test_adding_a_file_runs_the_worker_and_updates_the_list(
    empty_workspace: Workspace,
) -> None:
    write_jsonl(Path("support.jsonl"), SUPPORT_LINES)
    messages: list[Message] = []
    app = make_app(empty_workspace)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await settle(pilot)
        datasets = app.screen
        assert isinstance(datasets, DatasetsScreen)
        assert datasets.empty_panel.display

        await press(pilot, "a")
        modal = app.screen
        assert isinstance(modal, AddDatasetScreen)
        await pilot.press(*"support.jsonl")
        assert modal.name_input.value == "support"  # suggested from the file name
        await press(pilot, "enter")  # path → name
        assert app.focused is modal.name_input
        await press(pilot, "enter")  # add
        await settle(pilot)

        assert showing(app, datasets)
        assert [row.name for row in datasets.datasets] == ["support"]
        assert datasets.table.row_count == 1 and datasets.table.display
        assert not datasets.empty_panel.display
        assert "Added support@1: 12 rows, 2 errors, 7 warnings" in notifications(messages)
        assert any(isinstance(m, AddDatasetScreen.Progress) for m in messages)

        # The same content again is not a new version.
        await press(pilot, "a")
        modal = app.screen
        assert isinstance(modal, AddDatasetScreen)
        modal.path_input.value = "support.jsonl"
        await press(pilot, "tab", "enter")  # focus the name, submit
        await settle(pilot)
        assert showing(app, datasets)
        assert "No new version: identical to support@1" in notifications(messages)
        assert datasets.datasets[0].versions == 1


async def test_the_form_reports_unusable_input_inline(empty_workspace: Workspace) -> None:
    Path("folder").mkdir()
    app = make_app(empty_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "a")
        modal = app.screen
        assert isinstance(modal, AddDatasetScreen)
        modal.submit()
        await settle(pilot)
        assert text_of(modal.path_error) == "Give the path of a .jsonl or .parquet file."
        assert text_of(modal.name_error) == "Give the dataset a name."

        modal.path_input.value = "missing.jsonl"
        await settle(pilot)  # the path's Changed event suggests a name ...
        modal.name_input.value = "bad name"  # ... which the user then overrides
        await settle(pilot)
        modal.submit()
        await settle(pilot)
        assert text_of(modal.path_error) == "No such file: missing.jsonl"
        assert "use letters, digits" in text_of(modal.name_error)

        modal.path_input.value = "folder"
        await settle(pilot)
        modal.submit()
        await settle(pilot)
        assert "is a folder" in text_of(modal.path_error)
        assert not modal.is_adding and app.screen is modal
        await press(pilot, "escape")
        assert isinstance(app.screen, DatasetsScreen)


async def test_a_failing_add_shows_the_error_in_the_form(empty_workspace: Workspace) -> None:
    Path("empty.jsonl").write_text("")
    app = make_app(empty_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "a")
        modal = app.screen
        assert isinstance(modal, AddDatasetScreen)
        modal.path_input.value = "empty.jsonl"
        await settle(pilot)
        assert modal.name_input.value == "empty"
        modal.submit()
        await settle(pilot)
        assert showing(app, modal)  # still open, nothing crashed
        assert text_of(modal.form_error).startswith("Unusable input: empty.jsonl is empty")
        assert not modal.is_adding
        assert not modal.path_input.disabled
        assert not any(isinstance(s, ErrorScreen) for s in app.screen_stack)


async def test_a_busy_store_is_a_notification_not_a_crash(
    empty_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(self: FtodApp) -> None:
        raise StoreBusyError("The store stayed locked by another ftod process for 120 s.")

    monkeypatch.setattr(FtodApp, "repository", busy)
    messages: list[Message] = []
    app = make_app(empty_workspace)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await settle(pilot)
        assert "The store stayed locked by another ftod process for 120 s." in notifications(
            messages
        )
        screen = app.screen
        assert isinstance(screen, DatasetsScreen)
        assert not screen.table.loading
        assert "Could not read" in text_of(screen.status)


async def test_an_unknown_dataset_shows_the_error_modal(support_workspace: Workspace) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await app.push_screen(VersionScreen(ref="nope"))
        await settle(pilot)
        error = app.screen
        assert isinstance(error, ErrorScreen)
        assert error.error_title == "Not found"
        assert "No dataset named 'nope'" in error.error_message
        await press(pilot, "escape")
        assert isinstance(app.screen, VersionScreen)
        assert "could not be loaded" in text_of(app.screen.info)
