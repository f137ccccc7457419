"""The seams between the app and its screens: one store bundle, one worker-failure policy,
one cancel/resume, no file reads on the UI thread, and the screens' CSS in ftod.tcss."""

from __future__ import annotations

import ast
import threading
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

import tui.screens.run_detail as run_detail_module
from store.db import Store
from store.workspace import Workspace
from tests.tui.helpers import press, settle
from tests.tui.test_runs import make_run, runs_app, runs_screen, shown, wait_for
from tui.screens.error import ErrorScreen
from tui.screens.evals import EvalsScreen
from tui.screens.run_detail import RunDetailScreen

SCREENS = Path(__file__).resolve().parents[2] / "tui" / "screens"


async def test_the_app_opens_the_store_once_for_every_screen(
    empty_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Path] = []
    original = Store.open.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Store], workspace: Workspace, *args: Any, **kwargs: Any) -> Store:
        opened.append(workspace.root)
        store: Store = original(cls, workspace, *args, **kwargs)
        return store

    make_run(empty_workspace, "done", state="succeeded", steps=2)
    monkeypatch.setattr(Store, "open", classmethod(counting))
    app = runs_app(empty_workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = runs_screen(app)
        await wait_for(pilot, lambda: bool(screen.views), 10)
        await settle(pilot)  # the runs screen's store index refresh (ingest) has run
        await press(pilot, "v")
        assert isinstance(app.screen, EvalsScreen)
        await settle(pilot)
        assert app.repos.runs.store is app.repos.evals.store
    assert opened == [empty_workspace.root]


async def test_a_failed_resume_is_shown_by_the_app(empty_workspace: Workspace) -> None:
    make_run(empty_workspace, "done", state="succeeded", steps=2)
    app = runs_app(empty_workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = runs_screen(app)
        await wait_for(pilot, lambda: bool(screen.views), 10)
        await press(pilot, "R")
        error = app.screen
        assert isinstance(error, ErrorScreen)
        assert "already succeeded; nothing to resume" in error.error_message
        await press(pilot, "escape", "enter")  # the same action from the run's own screen
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        await wait_for(pilot, lambda: detail.snapshot is not None, 10)
        await press(pilot, "R")
        error = app.screen
        assert isinstance(error, ErrorScreen)
        assert "already succeeded; nothing to resume" in error.error_message
        await press(pilot, "escape", "x")
        assert isinstance(app.screen, RunDetailScreen)
        assert any("done is already succeeded." in str(n.message) for n in app._notifications)


async def test_the_run_detail_reads_its_config_in_the_poll_worker(
    empty_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = make_run(empty_workspace, "cfg", state="succeeded", steps=2)
    (paths.root / "config.yaml").write_text("model: tiny\ntrain:\n  lr: 0.002\n")
    threads: list[threading.Thread] = []
    read_config = run_detail_module.config_text

    def recording(run_dir: Path, run: dict[str, Any]) -> str:
        threads.append(threading.current_thread())
        return read_config(run_dir, run)

    monkeypatch.setattr(run_detail_module, "config_text", recording)
    app = runs_app(empty_workspace, open_run="cfg")
    async with app.run_test(size=(100, 30)) as pilot:
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        await wait_for(pilot, lambda: detail.snapshot is not None, 10)
        await settle(pilot)
        assert "lr: 0.002" in shown(detail.query_one("#run-config", Static))
    assert threads and all(thread is not threading.main_thread() for thread in threads)


def test_screens_keep_their_css_in_ftod_tcss() -> None:
    inline = sorted(
        f"{path.name}: {node.name}"
        for path in SCREENS.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
        for statement in node.body
        if isinstance(statement, ast.Assign)
        and any(
            isinstance(target, ast.Name) and target.id in ("CSS", "DEFAULT_CSS")
            for target in statement.targets
        )
    )
    assert inline == []
