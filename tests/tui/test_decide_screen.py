"""The Decide screen: symptoms ticked with the keyboard, a decision read from a real workspace,
stored as a named record and listed, opened from Home with `d`, and its snapshots."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Input

from core.decide.decision import DecideRequest, decide_with_audit
from core.decide.symptoms import SYMPTOM_IDS
from core.home import STAGES
from core.settings import load_settings
from store.workspace import Workspace
from tests.test_decide import add_clean_data, import_outputs, invoke, repositories
from tests.tui.helpers import press, settle
from tests.tui.test_home import demo_project, demo_workspace, home_app, home_screen
from tests.tui.test_runs import fixed_gpu_sampler
from tui.app import FtodApp
from tui.screens.decide import DecideScreen, DecisionNameScreen
from tui.screens.error import ErrorScreen
from tui.screens.help import HelpScreen, help_entries

__all__ = ["demo_project", "demo_workspace"]  # fixtures shared with the Home tests

SnapCompare = Callable[..., bool]
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.fixture
def decide_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """300 clean, split support rows and a baseline eval that fails every 20th test line
    (built with the CLI, as tests/test_decide.py does)."""
    root = tmp_path / "project"
    assert invoke(root, "init", str(root)).exit_code == 0
    add_clean_data(root, tmp_path)
    import_outputs(root, tmp_path, "baseline", wrong_every=20)
    monkeypatch.chdir(root)
    return root


def decide_app(root: Path) -> FtodApp:
    app = FtodApp(Workspace(root / ".ftod"), gpu_sampler=fixed_gpu_sampler())
    app.animation_level = "none"
    return app


def shown(renderable: object) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


async def until_decided(pilot: Pilot[None], screen: DecideScreen) -> None:
    started = time.perf_counter()
    while screen.decided is None:
        await pilot.pause(0.02)
        assert time.perf_counter() - started < 30, "no decision arrived"
    await settle(pilot)


async def type_into(pilot: Pilot[None], screen: DecideScreen, key: str, text: str) -> None:
    field: Input = screen.field(key)
    field.focus()
    await pilot.pause()
    await pilot.press(*text)


async def test_ticked_symptoms_decide_from_the_workspace(decide_project: Path) -> None:
    app = decide_app(decide_project)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "d")
        screen = app.screen
        assert isinstance(screen, DecideScreen)
        # Deciding with nothing ticked says so on the status line and decides nothing.
        await press(pilot, "ctrl+r")
        assert "at least one symptom" in str(screen.status.content)
        assert screen.decided is None
        # The symptom list has focus: down to `tone`, space ticks it; twice unticks.
        for _ in range(SYMPTOM_IDS.index("tone")):
            await pilot.press("down")
        await press(pilot, "space")
        await press(pilot, "space")
        assert screen.symptom_list.selected == []
        await press(pilot, "space")
        assert screen.symptom_list.selected == ["tone"]
        await type_into(pilot, screen, "dataset", "support@1:train")
        await type_into(pilot, screen, "baseline", "baseline")
        await type_into(pilot, screen, "requests", "1000")
        await type_into(pilot, screen, "stable", "yes")
        await press(pilot, "ctrl+r")
        await until_decided(pilot, screen)
        payload = screen.decided
        assert payload is not None
        text = shown(screen.result.content)
    # The same evidence read straight from the store gives the same decision.
    expected = decide_with_audit(
        repositories(decide_project),
        DecideRequest(
            symptoms=("tone",),
            dataset="support@1",
            split="train",
            baseline="baseline",
            requests_per_day=1000,
            stable=True,
        ),
        load_settings(decide_project),
    ).as_json()
    assert payload["verdict"] == expected["verdict"] == "dont_fine_tune"
    assert payload["checklist"] == expected["checklist"]
    assert payload["routes"] == expected["routes"]
    assert payload["routes"][0]["route"] == "prompt"
    assert "DON'T FINE-TUNE" in text
    assert "tone → prompt" in text and "the prompt is enough" in text
    for item in expected["checklist"]:
        assert f"{item['status']:>7} {item['id']}" in text
    assert "decide.enough_examples = 200  [default]" in text
    value = next(item for item in expected["checklist"] if item["id"] == "value")
    assert value["status"] == "pass"


async def test_a_bad_answer_is_said_on_the_status_line(decide_project: Path) -> None:
    app = decide_app(decide_project)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "d")
        screen = app.screen
        assert isinstance(screen, DecideScreen)
        await press(pilot, "space")
        await type_into(pilot, screen, "requests", "lots")
        await press(pilot, "ctrl+r")
        assert "requests per day must be a number" in str(screen.status.content)
        assert screen.decided is None


async def test_an_unknown_dataset_is_shown_not_crashed(decide_project: Path) -> None:
    app = decide_app(decide_project)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "d")
        screen = app.screen
        assert isinstance(screen, DecideScreen)
        await press(pilot, "space")
        await type_into(pilot, screen, "dataset", "nosuch@1")
        await press(pilot, "ctrl+r")
        started = time.perf_counter()
        while not isinstance(app.screen, ErrorScreen):
            await pilot.pause(0.02)
            assert time.perf_counter() - started < 30, "the failure was never shown"
        assert "nosuch" in app.screen.error_message
        assert "Failed: " in str(screen.status.content)
        assert screen.decided is None


async def test_a_decision_is_stored_by_name_and_listed_with_what_changed(
    decide_project: Path,
) -> None:
    app = decide_app(decide_project)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "d")
        screen = app.screen
        assert isinstance(screen, DecideScreen)
        assert screen.records == ()
        await press(pilot, "s")  # nothing decided yet: nothing to store
        assert not isinstance(app.screen, DecisionNameScreen)
        for _ in range(SYMPTOM_IDS.index("tone")):
            await pilot.press("down")
        await press(pilot, "space")
        await type_into(pilot, screen, "dataset", "support@1:train")
        await press(pilot, "ctrl+r")
        await until_decided(pilot, screen)
        screen.symptom_list.focus()
        await press(pilot, "s")
        assert isinstance(app.screen, DecisionNameScreen)
        await pilot.press(*"support-tone")
        await press(pilot, "enter")
        while not screen.records:
            await pilot.pause(0.02)
        # Decided again with an answer more: a second version of the same name.
        await type_into(pilot, screen, "stable", "no")
        await press(pilot, "ctrl+r")
        await pilot.pause(0.1)
        await until_decided(pilot, screen)
        screen.symptom_list.focus()
        await press(pilot, "s")
        await pilot.press(*"support-tone")
        await press(pilot, "enter")
        while screen.records[0][1] != 2:
            await pilot.pause(0.02)
        await settle(pilot)
        record, versions = screen.records[0]
        assert (record.name, record.version, versions) == ("support-tone", 2, 2)
        assert record.answers["stable"] is False
        screen.records_table.focus()
        await press(pilot, "enter")
        await settle(pilot)
        text = shown(screen.record_panel.content)
        assert "Decision support-tone@2" in text
        assert "Changed since version 1:" in text
        assert "answers.stable: None → False" in text
    # The CLI reads back what the screen stored.
    listed = invoke(decide_project, "decide", "list")
    assert listed.exit_code == 0 and "support-tone@2" in listed.output


async def test_d_opens_decide_from_home_and_the_decide_row_goes_there(
    demo_workspace: Workspace,
) -> None:
    app = home_app(demo_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        home = home_screen(app)
        home.table.move_cursor(row=STAGES.index("decide"))
        await press(pilot, "enter")
        assert isinstance(app.screen, DecideScreen)
        await press(pilot, "escape")
        assert cast(object, app.screen) is home  # escape went back to Home
        await press(pilot, "d")
        screen = app.screen
        assert isinstance(screen, DecideScreen)
        described = {
            (entry.group, entry.description): entry.keys for entry in help_entries(app, screen)
        }
        assert described[("This screen", "Decide")] == "^r"
        assert described[("This screen", "Store")] == "s"
        assert described[("Everywhere", "Decide")] == "d"
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)


async def test_decide_paints_within_a_second_of_the_key(demo_workspace: Workspace) -> None:
    # CPU time, not wall time: the machine is shared, and others' load does not inflate it.
    app = home_app(demo_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        started, started_cpu = time.perf_counter(), time.process_time()
        await pilot.press("d")
        while not isinstance(app.screen, DecideScreen) or not app.screen.is_mounted:
            await pilot.pause(0.01)
            assert time.perf_counter() - started < 30, "Decide never painted"
        await pilot.pause()
        painted_cpu = time.process_time() - started_cpu
        painted = time.perf_counter() - started
    print(f"decide paint: {painted:.3f} s wall, {painted_cpu:.3f} s CPU")
    assert painted_cpu < 1.0, f"Decide took {painted_cpu:.3f} s of CPU to paint (budget 1 s)"


@pytest.mark.parametrize("size", SIZES)
def test_decide_snapshot(
    snap_compare: SnapCompare, demo_workspace: Workspace, size: tuple[int, int]
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await press(pilot, "d")
        await settle(pilot)

    assert snap_compare(home_app(demo_workspace), terminal_size=size, run_before=run_before)
