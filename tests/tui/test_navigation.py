"""Pilot tests: datasets → version → findings → example, search, help, versions, palette."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from rich.console import ConsoleRenderable
from rich.text import Text
from textual.app import App
from textual.command import CommandPalette
from textual.message import Message
from textual.widgets import Static, TabbedContent

from core.datasets import add_dataset
from store.datasets import FindingRecord
from store.workspace import Workspace
from tests.tui.helpers import (
    SUPPORT_LINES,
    make_app,
    open_repository,
    plain,
    press,
    settle,
    showing,
    write_jsonl,
)
from tui.screens.datasets import DatasetsScreen
from tui.screens.example import ExampleScreen
from tui.screens.findings import FindingsScreen
from tui.screens.help import HelpScreen
from tui.screens.version import VersionScreen
from tui.widgets.conversation import PII_STYLE, ConversationView, MessageView


def cell_text(value: object) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def table_rows(screen_table: object) -> list[list[str]]:
    from textual.widgets import DataTable

    assert isinstance(screen_table, DataTable)
    return [
        [cell_text(cell) for cell in screen_table.get_row_at(index)]
        for index in range(screen_table.row_count)
    ]


def static_text(widget: Static) -> str:
    content = widget.content
    if isinstance(content, Text):
        return content.plain
    if isinstance(content, ConsoleRenderable | str):
        return plain(content)
    return str(content)


def conversation_text(view: ConversationView) -> str:
    return "\n".join(static_text(child) for child in view.query(Static))


async def test_datasets_list_shows_latest_version(support_workspace: Workspace) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DatasetsScreen)
        assert table_rows(screen.table) == [
            ["support", "1", "12", screen.datasets[0].sha256[:12], "2", "7", "2026-01-02 03:04"]
        ]
        assert not screen.empty_panel.display
        assert app.focused is screen.table


async def test_empty_workspace_explains_how_to_add(empty_workspace: Workspace) -> None:
    app = make_app(empty_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DatasetsScreen)
        assert screen.empty_panel.display
        assert not screen.table.display
        text = static_text(screen.empty_panel)
        assert "ftod data add FILE --name NAME" in text
        assert "press a" in text


async def test_drill_down_to_a_pii_highlight_and_back(support_workspace: Workspace) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "enter")
        version_screen = app.screen
        assert isinstance(version_screen, VersionScreen)
        assert version_screen.sub_title == "support@1"
        rows = table_rows(version_screen.checks_table)
        assert rows[0] == ["contradiction", "error", "1", "2"]  # one finding over two rows
        checks = [row[0] for row in rows]
        assert checks == [
            "contradiction",
            "exact_duplicate",
            "invalid_json",
            "leakage",
            "near_duplicate",
            "pii",
            "volatile_fact",  # "within 30 days", "Pro plan", "Enterprise plan"
        ]
        # j moves down like the arrow keys; the pii row is the one before volatile_fact.
        await pilot.press(*("j" * 5))
        await press(pilot, "enter")
        findings_screen = app.screen
        assert isinstance(findings_screen, FindingsScreen)
        assert findings_screen.check == "pii"
        assert (findings_screen.loaded, findings_screen.total) == (1, 1)
        assert "1 of 1 findings" in static_text(findings_screen.status)

        await press(pilot, "enter")
        example_screen = app.screen
        assert isinstance(example_screen, ExampleScreen)
        assert not example_screen.is_pairwise
        assert not example_screen.right_pane.display
        messages = list(example_screen.left_pane.query(MessageView))
        assert len(messages) == 3
        user_text = messages[1].content
        assert isinstance(user_text, Text)
        highlighted = [
            user_text.plain[span.start : span.end]
            for span in user_text.spans
            if span.style == PII_STYLE
        ]
        assert highlighted == ["jane.doe@example.com"]

        await press(pilot, "escape")
        assert showing(app, findings_screen)
        await press(pilot, "escape")
        assert showing(app, version_screen)
        await press(pilot, "escape")
        assert isinstance(app.screen, DatasetsScreen)
        await press(pilot, "escape")  # nowhere further back: stays put, no crash
        assert isinstance(app.screen, DatasetsScreen)


async def test_contradiction_shows_two_conversations_side_by_side(
    support_workspace: Workspace,
) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await app.push_screen(FindingsScreen(1, None))
        await settle(pilot)
        findings_screen = app.screen
        assert isinstance(findings_screen, FindingsScreen)
        assert findings_screen.check is None
        assert findings_screen.total == 10  # 4 of them volatile_fact
        checks = [row[0] for row in table_rows(findings_screen.table)]
        await press(pilot, *(["down"] * checks.index("contradiction")), "enter")
        screen = app.screen
        assert isinstance(screen, ExampleScreen)
        assert screen.is_pairwise and screen.right_pane.display
        left = screen.left_pane.query_one(ConversationView)
        right = screen.right_pane.query_one(ConversationView)
        assert left.side.title == "line 8"
        assert right.side.title == "contradiction · line 9"
        assert "includes phone support" in conversation_text(left)
        assert "only part of the Enterprise plan" in conversation_text(right)
        assert ("label", "plans") in right.side.metadata


async def test_split_leakage_shows_the_other_split_row(support_workspace: Workspace) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await app.push_screen(FindingsScreen(1, None))
        await settle(pilot)
        findings_screen = app.screen
        assert isinstance(findings_screen, FindingsScreen)
        checks = [row[0] for row in table_rows(findings_screen.table)]
        await pilot.press(*("j" * checks.index("leakage")))
        await press(pilot, "enter")
        screen = app.screen
        assert isinstance(screen, ExampleScreen)
        right = screen.right_pane.query_one(ConversationView)
        assert right.side.title.startswith("split:")
        assert right.side.messages, "the other split's row is a row of this version"


def synthetic_finding(lines: tuple[int, ...], **changes: object) -> FindingRecord:
    values: dict[str, object] = {
        "finding_id": 999,
        "check": "exact_duplicate",
        "severity": "warning",
        "lines": lines,
        "message": "synthetic group",
        "other_path": None,
        "other_lines": (),
        "spans": (),
        "split_id": None,
    }
    values.update(changes)
    return FindingRecord(**values)  # type: ignore[arg-type]


async def test_n_and_p_cycle_through_group_members(support_workspace: Workspace) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await app.push_screen(ExampleScreen(1, synthetic_finding((4, 5, 6))))
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ExampleScreen)

        def right_title() -> str:
            return screen.right_pane.query_one(ConversationView).side.title

        assert right_title() == "exact duplicate · line 5 (1 of 2)"
        await press(pilot, "n")
        assert right_title() == "exact duplicate · line 6 (2 of 2)"
        await press(pilot, "n")
        assert right_title() == "exact duplicate · line 5 (1 of 2)"
        await press(pilot, "p")
        assert right_title() == "exact duplicate · line 6 (2 of 2)"
        assert screen.left_pane.query_one(ConversationView).side.title == "line 4"


async def test_external_leakage_reads_the_other_file_or_says_it_is_gone(
    support_workspace: Workspace, tmp_path: Path
) -> None:
    other = write_jsonl(tmp_path / "eval.jsonl", [SUPPORT_LINES[0], SUPPORT_LINES[3]])
    present = synthetic_finding(
        (4,), check="leakage", severity="error", other_path=str(other), other_lines=(2,)
    )
    missing = synthetic_finding(
        (4,),
        check="leakage",
        severity="error",
        other_path=str(tmp_path / "gone.jsonl"),
        other_lines=(2,),
    )
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await app.push_screen(ExampleScreen(1, present))
        await settle(pilot)
        right = app.screen.query_one("#right-conversation", ConversationView)
        assert right.side.unavailable is None
        assert "refund for order 1234" in conversation_text(right)

        await press(pilot, "escape")
        await app.push_screen(ExampleScreen(1, missing))
        await settle(pilot)
        right = app.screen.query_one("#right-conversation", ConversationView)
        assert right.side.unavailable is not None
        assert "no longer exists" in right.side.unavailable


async def test_invalid_row_shows_raw_line_and_reason(support_workspace: Workspace) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await app.push_screen(ExampleScreen(1, synthetic_finding((3,), check="invalid_json")))
        await settle(pilot)
        view = app.screen.query_one("#left-conversation", ConversationView)
        text = conversation_text(view)
        assert "invalid row: invalid_json: not valid JSON" in text
        assert '{"messages": [{"role": "user", "content": "broken' in text


async def test_tool_calls_and_untrained_turns_are_marked(support_workspace: Workspace) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await app.push_screen(ExampleScreen(1, synthetic_finding((10,), check="pii")))
        await settle(pilot)
        text = conversation_text(app.screen.query_one("#left-conversation", ConversationView))
        assert '→ call get_weather({"city": "Paris"})' in text
        assert "answers c1" in text
        await press(pilot, "escape")
        await app.push_screen(ExampleScreen(1, synthetic_finding((12,), check="pii")))
        await settle(pilot)
        view = app.screen.query_one("#left-conversation", ConversationView)
        roles = [list(child.classes) for child in view.query(MessageView)]
        assert [c for c in roles[1] if c.startswith("-")] == ["-assistant"]
        assert "not trained (weight 0)" in static_text(list(view.query(MessageView))[1])
        assert "not trained" not in static_text(list(view.query(MessageView))[3])


async def test_findings_search_filters_and_escape_clears(support_workspace: Workspace) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "enter")
        await press(pilot, "f", "slash")
        screen = app.screen
        assert isinstance(screen, FindingsScreen)
        assert screen.search_bar.is_open and screen.search_bar.has_focus
        await pilot.press(*"whitespace", "enter")  # enter searches without the typing pause
        await settle(pilot)
        assert screen.total == 1
        assert [row[0] for row in table_rows(screen.table)] == ["exact_duplicate"]
        assert "1 of 1 findings" in static_text(screen.status)
        assert "search 'whitespace'" in static_text(screen.status)
        assert app.focused is screen.table  # enter kept the filter and went back to the table
        await press(pilot, "escape")  # clears the search first
        assert not screen.search_bar.is_open
        assert screen.total == 10  # 4 of them volatile_fact
        await press(pilot, "escape")
        assert isinstance(app.screen, VersionScreen)


async def test_datasets_filter(support_workspace: Workspace) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DatasetsScreen)
        await press(pilot, "slash", "z", "z")
        assert screen.table.row_count == 0
        assert "0 of 1 datasets match" in static_text(screen.status)
        await press(pilot, "escape")
        assert screen.table.row_count == 1


async def test_help_lists_the_bindings_of_the_current_screen(support_workspace: Workspace) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "enter", "question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        assert help_screen.help_title == "support@1"
        described = {(entry.group, entry.description): entry.keys for entry in help_screen.entries}
        assert described[("This screen", "Older")] == "["
        assert described[("This screen", "Newer")] == "]"
        assert described[("This screen", "All findings")] == "f"
        assert described[("This screen", "Tokens tab")] == "2"
        assert described[("Table", "Open")] == "⏎"
        assert described[("Table", "Down")] == "j"
        assert described[("Everywhere", "Help")] == "?"
        await press(pilot, "escape")
        assert isinstance(app.screen, VersionScreen)


async def test_version_tabs_switch_with_number_keys(support_workspace: Workspace) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "enter", "5")
        screen = app.screen
        assert isinstance(screen, VersionScreen)
        assert screen.query_one(TabbedContent).active == "splits"
        splits = static_text(screen.query_one("#splits-panel", Static))
        assert "seed 1" in splits and "leakage findings: 1" in splits
        await press(pilot, "1")
        assert screen.query_one(TabbedContent).active == "findings"
        assert app.focused is screen.checks_table


async def test_brackets_switch_between_versions(
    copied_workspace: Workspace, tmp_path: Path
) -> None:
    repository = open_repository(copied_workspace)
    second = write_jsonl(tmp_path / "support-v2.jsonl", [*SUPPORT_LINES[:2], *SUPPORT_LINES[3:]])
    add_dataset(copied_workspace, repository, second, "support")
    app = make_app(copied_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "enter")
        screen = app.screen
        assert isinstance(screen, VersionScreen) and screen.detail is not None
        assert screen.detail.version.ref == "support@2"
        assert "version 2 of 2" in static_text(screen.info)
        await press(pilot, "left_square_bracket")
        assert screen.detail.version.ref == "support@1"
        assert "invalid_json" in screen.checks
        await press(pilot, "left_square_bracket")  # already the first: stays
        assert screen.detail.version.ref == "support@1"
        await press(pilot, "right_square_bracket")
        assert screen.detail.version.ref == "support@2"
        assert "invalid_json" not in screen.checks


async def test_command_palette_opens_datasets_and_findings(support_workspace: Workspace) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "ctrl+p")
        assert CommandPalette.is_open(cast(App[object], app))
        await pilot.press(*"support")
        await pilot.pause(0.05)  # the palette searches in its own task
        await press(pilot, "enter")
        screen = app.screen
        assert isinstance(screen, VersionScreen)
        await press(pilot, "ctrl+p")
        await pilot.press(*"near")
        await pilot.pause(0.05)
        await press(pilot, "enter")
        findings = app.screen
        assert isinstance(findings, FindingsScreen)
        assert findings.check == "near_duplicate"
        await press(pilot, "ctrl+p")
        await pilot.press(*"help")
        await pilot.pause(0.05)
        await press(pilot, "enter")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        assert any(entry.description == "Search" for entry in help_screen.entries)


async def test_findings_pages_load_as_the_cursor_nears_the_end(
    tmp_path: Path, monkeypatch: object
) -> None:
    from pytest import MonkeyPatch

    assert isinstance(monkeypatch, MonkeyPatch)
    from store.workspace import init_workspace

    project = tmp_path / "many"
    project.mkdir()
    monkeypatch.chdir(project)
    rows = [
        f'{{"messages": [{{"role": "user", "content": "Mail me at user{n}@example.com about ticket {n}"}}, '
        f'{{"role": "assistant", "content": "Noted for ticket {n * 7919 % 100003}."}}]}}'
        for n in range(450)
    ]
    source = write_jsonl(project / "many.jsonl", rows)
    workspace, _ = init_workspace(project)
    outcome = add_dataset(workspace, open_repository(workspace), source, "many")
    messages: list[Message] = []
    app = make_app(workspace)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await settle(pilot)
        await app.push_screen(FindingsScreen(outcome.version.version_id, "pii"))
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, FindingsScreen)
        assert (screen.loaded, screen.total) == (200, 450)
        await press(pilot, "G")  # the last loaded row: the next page comes in
        assert screen.loaded == 400
        await press(pilot, "G")
        assert screen.loaded == 450
        await press(pilot, "G")
        assert screen.loaded == 450
        assert "450 of 450 findings" in static_text(screen.status)
        pages = [m for m in messages if isinstance(m, FindingsScreen.FindingsPageLoaded)]
        assert [page.offset for page in pages] == [0, 200, 400]


async def test_a_check_row_opens_only_that_check_and_severity(tmp_path: Path) -> None:
    """pii is listed once as error (a card) and once as warning (an email): each row
    opens only its own findings."""
    from textual.widgets import DataTable

    from store.datasets import DatasetRepository
    from store.db import Store
    from store.workspace import init_workspace
    from tests.tui.helpers import CREATED_AT, chat

    workspace, _ = init_workspace(tmp_path)
    repository = DatasetRepository(Store.open(workspace))
    path = tmp_path / "pii.jsonl"
    path.write_text(
        "\n".join(
            [
                chat("My card is 4111 1111 1111 1111, charge it.", "Done, charged."),
                chat("Write to me at jane.doe@example.org please.", "Sure, I will."),
                chat("Where is my parcel from Monday?", "It arrives tomorrow."),
            ]
        )
        + "\n"
    )
    add_dataset(workspace, repository, path, "pii", created_at=CREATED_AT)
    app = make_app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "enter")
        version_screen = app.screen
        rows = [
            tuple(row[:2])
            for row in table_rows(version_screen.query_one("#checks-table", DataTable))
        ]
        assert rows == [("pii", "error"), ("pii", "warning")]
        await press(pilot, "down", "enter")
        findings_screen = app.screen
        assert isinstance(findings_screen, FindingsScreen)
        assert (findings_screen.check, findings_screen.severity) == ("pii", "warning")
        assert findings_screen.total == 1
        assert [row[0] for row in table_rows(findings_screen.table)] == ["pii"]
