"""The evals screen at 80×24: every eval with its scores and gate verdict, and enter opening
the review room on the right pair (marked with b, the gate's baseline, else the latest
earlier eval of the same dataset version)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import cast

import pytest
from rich.text import Text
from textual.app import App
from textual.command import CommandPalette
from textual.widgets import Static
from textual.worker import get_current_worker

from core.datasets import add_dataset
from core.evals.service import import_eval, run_gate
from store.datasets import DatasetRepository
from store.db import Store
from store.evals import EvalRepository, GateResultRecord, ScorerSummary
from store.workspace import Workspace, init_workspace
from tests.conftest import chat
from tests.conftest import write_jsonl as write_rows
from tests.test_review import A_RIGHT, A_WRONG, B_RIGHT, B_WRONG, N, reference, slice_of
from tests.tui.helpers import CREATED_AT, make_app, press, settle, showing
from tests.tui.test_review_snapshots import GATE
from tests.tui.test_runs import wait_for
from tui.app import FtodApp
from tui.screens.datasets import DatasetsScreen
from tui.screens.evals import (
    EvalEntry,
    EvalsScreen,
    NoPair,
    ReviewPair,
    choose_pair,
    model_text,
    read_details,
)
from tui.screens.help import HelpScreen
from tui.screens.review import ReviewScreen

SIZE = (80, 24)
WIDE = (120, 40)
# Evals in id order: four on support@1, one alone on faq@1.
LABELS = ["base", "tuned", "tuned-v2", "tuned-v3", "faq-base"]


def build_evals_workspace(folder: Path) -> Workspace:
    """support@1 (8 rows, two slices) with evals base, tuned, tuned-v2 (gated against base)
    and tuned-v3, and faq@1 with one eval; every time fixed, so snapshots are stable."""
    workspace, _ = init_workspace(folder)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    rows = [
        chat(f"Ticket {i} {words[i]}: when does refund {i * 37} arrive?", reference(i))
        | {"metadata": {"slice": slice_of(i)}}
        for i in range(N)
    ]
    store = Store.open(workspace)
    datasets = DatasetRepository(store)
    evals = EvalRepository(store)
    support = write_rows(folder / "support.jsonl", rows)
    add_dataset(workspace, datasets, support, "support", created_at=CREATED_AT)
    faq_rows = [chat("What are your hours?", "9 to 5."), chat("Where are you?", "Paris.")]
    faq = write_rows(folder / "faq.jsonl", faq_rows)
    add_dataset(workspace, datasets, faq, "faq", created_at=CREATED_AT)

    def outputs(name: str, right: frozenset[int] | range, wrong: str) -> Path:
        lines = [{"line": i + 1, "output": reference(i) if i in right else wrong} for i in range(N)]
        return write_rows(folder / f"{name}.jsonl", lines)

    model = "Qwen/Qwen2.5-0.5B-Instruct"
    import_eval(
        datasets,
        evals,
        "support@1",
        outputs("base", A_RIGHT, A_WRONG),
        "base",
        model=model,
        prompt="fewshot@1",
        created_at=CREATED_AT,
    )
    import_eval(
        datasets,
        evals,
        "support@1",
        outputs("tuned", B_RIGHT, B_WRONG),
        "tuned",
        model=model,
        adapter="runs/lora-r8",
        created_at=CREATED_AT,
    )
    import_eval(
        datasets,
        evals,
        "support@1",
        outputs("tuned-v2", range(N), B_WRONG),
        "tuned-v2",
        ["exact", "chrf"],
        created_at=CREATED_AT,
    )
    import_eval(
        datasets,
        evals,
        "support@1",
        outputs("tuned-v3", range(1), B_WRONG),
        "tuned-v3",
        created_at=CREATED_AT,
    )
    faq_outputs = write_rows(folder / "faq-out.jsonl", [{"line": 1, "output": "9 to 5."}])
    import_eval(datasets, evals, "faq@1", faq_outputs, "faq-base", created_at=CREATED_AT)
    spec = folder / "gate.yaml"
    spec.write_text(GATE)
    run_gate(evals, spec, "base", "tuned-v2", created_at=CREATED_AT)
    return workspace


@pytest.fixture(scope="session")
def evals_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project folder of `build_evals_workspace`, built once; tests only read it."""
    project = tmp_path_factory.mktemp("evals-project")
    build_evals_workspace(project)
    return project


@pytest.fixture
def evals_workspace(evals_project: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.chdir(evals_project)  # the status line shows the workspace path
    monkeypatch.setenv("FTOD_REVIEWER", "alice")
    return Workspace(evals_project / ".ftod")


def cell_text(value: object) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def rows_of(screen: EvalsScreen) -> list[list[str]]:
    table = screen.table
    return [[cell_text(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def static_text(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Text) else str(content)


def notices(app: FtodApp) -> list[str]:
    return [str(notification.message) for notification in app._notifications]


async def open_evals(app: FtodApp, pilot: object) -> EvalsScreen:
    from textual.pilot import Pilot

    assert isinstance(pilot, Pilot)
    await settle(pilot)
    assert isinstance(app.screen, DatasetsScreen)
    await press(pilot, "v")
    screen = app.screen
    assert isinstance(screen, EvalsScreen)
    if screen.table.row_count:
        # It opens on the newest eval, the one most likely to be reviewed next; the tests
        # below walk down from the top.
        assert screen.selected_eval_id() == screen.entries[-1].eval_id
        await press(pilot, "g")
    return screen


async def test_v_opens_the_table_of_every_eval(evals_workspace: Workspace) -> None:
    app = make_app(evals_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_evals(app, pilot)
        assert not screen.wide
        assert rows_of(screen) == [
            [" ", "base", "#1", "support@1", "8", "exact 0.500", "—"],
            [" ", "tuned", "#2", "support@1", "8", "exact 0.500", "—"],
            [" ", "tuned-v2", "#3", "support@1", "8", "exact 1.000  chrf 1.0…", "FAIL"],
            [" ", "tuned-v3", "#4", "support@1", "8", "exact 0.125", "—"],
            [" ", "faq-base", "#5", "faq@1", "1", "exact 1.000", "—"],
        ]
        assert app.focused is screen.table
        assert not screen.empty_panel.display
        assert static_text(screen.status).startswith("5 evals  ·  workspace .ftod")
        # The panel under the table holds what the narrow table leaves out.
        assert static_text(screen.detail).splitlines() == [
            "No baseline for base: no gate result and no earlier eval of support@1. Mark a "
            "baseline with b, then press enter on the candidate.",
            "no gate run with it as candidate · exact 0.500 over 8",
            "model Qwen/Qwen2.5-0.5B-Instruct · prompt fewshot@1 · import 2026-01-02 03:04",
        ]
        assert screen.active_bindings["enter"].binding.description == "Review"
        # `v` again, and from deeper screens, goes back to the open one.
        await press(pilot, "v")
        assert showing(app, screen) and len(app.screen_stack) == 2


async def test_wide_table_shows_model_and_created(evals_workspace: Workspace) -> None:
    app = make_app(evals_workspace)
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_evals(app, pilot)
        assert screen.wide
        rows = rows_of(screen)
        assert rows[1] == [
            " ",
            "tuned",
            "#2",
            "support@1",
            "Qwen/Qwen2.5-0.5B-Instr…",
            "8",
            "exact 0.500",
            "—",
            "2026-01-02 03:04",
        ]
        assert rows[2][4] == "—" and rows[2][6] == "exact 1.000  chrf 1.000"


async def test_enter_reviews_against_the_latest_earlier_eval(evals_workspace: Workspace) -> None:
    app = make_app(evals_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_evals(app, pilot)
        await press(pilot, "j")  # tuned: no gate, base is the eval before it on support@1
        assert "enter reviews tuned against base (the latest earlier eval of support@1)" in (
            static_text(screen.detail)
        )
        await press(pilot, "enter")
        review = app.screen
        assert isinstance(review, ReviewScreen)
        assert (review.baseline_ref, review.candidate_ref) == ("base", "tuned")
        assert review.room is not None  # the pair loaded: no error modal
        assert review.room.pair.baseline.label == "base"
        # Back, then tuned-v3: the latest earlier is tuned-v2, not the first one.
        await press(pilot, "escape")
        assert showing(app, screen)
        await press(pilot, "j", "j", "enter")
        review = app.screen
        assert isinstance(review, ReviewScreen)
        assert (review.baseline_ref, review.candidate_ref) == ("tuned-v2", "tuned-v3")


async def test_enter_reviews_against_the_gate_baseline(evals_workspace: Workspace) -> None:
    app = make_app(evals_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_evals(app, pilot)
        await press(pilot, "j", "j")  # tuned-v2 was gated against base, not tuned
        detail = static_text(screen.detail)
        assert "gate FAIL against base (#1, 2026-01-02 03:04)" in detail
        assert "against base (the baseline of its gate #1)" in detail
        await press(pilot, "enter")
        review = app.screen
        assert isinstance(review, ReviewScreen)
        assert (review.baseline_ref, review.candidate_ref) == ("base", "tuned-v2")


async def test_b_marks_the_baseline(evals_workspace: Workspace) -> None:
    app = make_app(evals_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_evals(app, pilot)
        await press(pilot, "j", "b")
        assert screen.marked is not None and screen.marked.label == "tuned"
        assert [row[0] for row in rows_of(screen)] == [" ", "B", " ", " ", " "]
        assert "baseline tuned (b)" in static_text(screen.status)
        # Enter on the marked eval itself says so and opens nothing.
        await press(pilot, "enter")
        assert showing(app, screen)
        assert any("tuned is the baseline you marked with b" in n for n in notices(app))
        # The mark wins over the gate's baseline of tuned-v2.
        await press(pilot, "j")
        assert "against tuned (marked with b)" in static_text(screen.detail)
        await press(pilot, "enter")
        review = app.screen
        assert isinstance(review, ReviewScreen)
        assert (review.baseline_ref, review.candidate_ref) == ("tuned", "tuned-v2")
        await press(pilot, "escape")
        # The mark survives the reload on return; b on it again unmarks it.
        assert screen.marked is not None and screen.marked.label == "tuned"
        await press(pilot, "k", "b")
        assert screen.marked is None
        assert [row[0] for row in rows_of(screen)] == [" "] * 5
        # A mark on another dataset version is refused with the reason.
        await press(pilot, "G", "b", "g", "enter")
        assert showing(app, screen)
        assert any(
            "the review room compares evals of one dataset version" in n for n in notices(app)
        )


async def test_enter_before_the_gates_are_read_reads_them_first(
    evals_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The list shows at once; the table worker's read of every eval's scores and gates is
    # held back here, so enter has to read the candidate's gate results itself.
    held = threading.Event()
    real = EvalRepository.summaries_and_gates

    def slow(
        evals: EvalRepository,
    ) -> tuple[dict[int, list[ScorerSummary]], dict[int, list[GateResultRecord]]]:
        if get_current_worker().group == "evals":
            held.wait(10)
        return real(evals)

    monkeypatch.setattr(EvalRepository, "summaries_and_gates", slow)
    app = make_app(evals_workspace)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("v")
        screen = app.screen
        assert isinstance(screen, EvalsScreen)
        await wait_for(pilot, lambda: screen.table.row_count == 5, timeout=10)
        assert [row[5:] for row in rows_of(screen)] == [["…", "…"]] * 5
        await pilot.press("g", "j", "j")
        await wait_for(pilot, lambda: screen.selected_eval_id() == 3, timeout=10)
        assert static_text(screen.detail).startswith("reading its gate results…")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen), timeout=10)
        review = app.screen
        assert isinstance(review, ReviewScreen)
        assert (review.baseline_ref, review.candidate_ref) == ("base", "tuned-v2")
        held.set()
        await settle(pilot)
        await press(pilot, "escape")
        assert showing(app, screen)
        assert rows_of(screen)[2][5:] == ["exact 1.000  chrf 1.0…", "FAIL"]


async def test_no_baseline_is_a_message_not_a_crash(evals_workspace: Workspace) -> None:
    app = make_app(evals_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_evals(app, pilot)
        await press(pilot, "G", "enter")  # faq-base: alone on faq@1
        assert showing(app, screen)
        assert any(
            "No baseline for faq-base: no gate result and no earlier eval of faq@1" in n
            for n in notices(app)
        )
        await press(pilot, "g", "enter")  # base: the first eval of support@1
        assert showing(app, screen)
        assert any("No baseline for base" in n for n in notices(app))


async def test_filter_and_reload(evals_workspace: Workspace) -> None:
    app = make_app(evals_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_evals(app, pilot)
        await press(pilot, "slash")
        await pilot.press(*"lora")  # the adapter of tuned
        await settle(pilot)
        assert [row[1] for row in rows_of(screen)] == ["tuned"]
        assert static_text(screen.status).startswith("1 of 5 evals match 'lora'")
        await press(pilot, "enter", "enter")  # back to the table, then review tuned
        review = app.screen
        assert isinstance(review, ReviewScreen)
        assert (review.baseline_ref, review.candidate_ref) == ("base", "tuned")
        await press(pilot, "escape", "escape")  # back to the evals, then close the filter
        assert showing(app, screen) and not screen.has_open_search()
        assert len(rows_of(screen)) == 5
        await press(pilot, "r")
        assert len(rows_of(screen)) == 5


async def test_empty_workspace_says_how_to_create_evals(empty_workspace: Workspace) -> None:
    app = make_app(empty_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_evals(app, pilot)
        assert screen.empty_panel.display and not screen.table.display
        text = static_text(screen.empty_panel)
        assert text.startswith("No evals yet: ")
        assert "ftod eval import" in text and "ftod eval run" in text
        assert static_text(screen.status).startswith("0 evals")
        await press(pilot, "enter", "b")  # nothing highlighted: nothing happens
        assert showing(app, screen) and screen.marked is None


async def test_the_palette_offers_evals(evals_workspace: Workspace) -> None:
    app = make_app(evals_workspace)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "ctrl+p")
        assert CommandPalette.is_open(cast(App[object], app))
        await pilot.press(*"evals")
        await pilot.pause(0.05)  # the palette searches in its own task
        await press(pilot, "enter")
        assert isinstance(app.screen, EvalsScreen)
        assert len(app.screen.entries) == 5


async def test_help_lists_the_keys_of_the_evals(evals_workspace: Workspace) -> None:
    app = make_app(evals_workspace)
    async with app.run_test(size=SIZE) as pilot:
        await open_evals(app, pilot)
        await press(pilot, "question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        found = {(entry.keys, entry.description) for entry in help_screen.entries}
        assert {("b", "Baseline"), ("/", "Filter"), ("r", "Reload"), ("v", "Evals")} <= found
        assert ("⏎", "Review") in found


async def test_the_app_can_open_on_the_evals(evals_workspace: Workspace) -> None:
    app = FtodApp(evals_workspace, initial_screen="evals")
    app.animation_level = "none"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, EvalsScreen)
        assert [row[1] for row in rows_of(app.screen)] == LABELS


# -- the pair, without the app -------------------------------------------------------------------


def entries_of(workspace: Workspace) -> tuple[EvalEntry, ...]:
    evals = EvalRepository(Store.open(workspace))
    return tuple(EvalEntry(r, read_details(evals, r.eval_id)) for r in evals.list_evals())


def pair_labels(pair: ReviewPair | NoPair) -> tuple[str, str]:
    assert isinstance(pair, ReviewPair), pair
    return pair.baseline.label, pair.candidate.label


def test_choose_pair(evals_workspace: Workspace) -> None:
    entries = entries_of(evals_workspace)
    assert [entry.record.label for entry in entries] == LABELS
    ids = {entry.record.label: entry.eval_id for entry in entries}
    assert entries[2].latest_gate is not None and not entries[2].latest_gate.passed
    assert pair_labels(choose_pair(entries, ids["tuned"])) == ("base", "tuned")
    assert pair_labels(choose_pair(entries, ids["tuned-v2"])) == ("base", "tuned-v2")
    assert pair_labels(choose_pair(entries, ids["tuned-v3"])) == ("tuned-v2", "tuned-v3")
    assert pair_labels(choose_pair(entries, ids["base"], ids["tuned-v3"])) == ("tuned-v3", "base")
    for candidate, marked in [("base", None), ("faq-base", None), ("tuned", "tuned")]:
        chosen = choose_pair(entries, ids[candidate], ids.get(marked or ""))
        assert isinstance(chosen, NoPair)
    different = choose_pair(entries, ids["tuned"], ids["faq-base"])
    assert isinstance(different, NoPair) and "faq@1" in different.message
    assert isinstance(choose_pair(entries, 99), NoPair)
    assert isinstance(choose_pair((), 1), NoPair)


def test_model_text(evals_workspace: Workspace) -> None:
    records = [entry.record for entry in entries_of(evals_workspace)]
    assert [model_text(record) for record in records[:3]] == [
        "Qwen/Qwen2.5-0.5B-Instruct · fewshot@1",
        "Qwen/Qwen2.5-0.5B-Instruct + runs/lora-r8",
        "",
    ]


async def test_a_failed_read_is_said_on_the_status_line_and_r_retries(
    evals_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from store.errors import InputError
    from tui.screens.error import ErrorScreen

    real = EvalRepository.list_evals

    def broken(evals: EvalRepository) -> list[object]:
        raise InputError("the store is unreadable", title="Store unreadable")

    monkeypatch.setattr(EvalRepository, "list_evals", broken)
    app = make_app(evals_workspace)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "v")
        await settle(pilot)
        assert isinstance(app.screen, ErrorScreen)  # the app shows the error once
        await press(pilot, "escape")
        screen = app.screen
        assert isinstance(screen, EvalsScreen)
        assert static_text(screen.status).startswith(
            "Could not read the evals: the store is unreadable (r retries)"
        )
        monkeypatch.setattr(EvalRepository, "list_evals", real)
        await press(pilot, "r")
        await wait_for(pilot, lambda: screen.table.row_count == 5, timeout=10)
