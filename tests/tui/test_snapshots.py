"""Snapshots of the data desk at 80×24 (the SSH floor) and 120×40.

Regenerate with `pytest tests/tui/test_snapshots.py --snapshot-update` and look at the SVGs
before committing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from store.workspace import Workspace
from tests.tui.helpers import make_app, press, settle

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]

SnapCompare = Callable[..., bool]


def keys(*pressed: str) -> Callable[[Pilot[None]], Awaitable[None]]:
    """A run_before that waits for the first screen, then presses keys, settling after each."""

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await press(pilot, *pressed)

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_datasets_list(
    snap_compare: SnapCompare, support_workspace: Workspace, size: tuple[int, int]
) -> None:
    assert snap_compare(make_app(support_workspace), terminal_size=size, run_before=keys())


@pytest.mark.parametrize("size", SIZES)
def test_version_detail(
    snap_compare: SnapCompare, support_workspace: Workspace, size: tuple[int, int]
) -> None:
    assert snap_compare(make_app(support_workspace), terminal_size=size, run_before=keys("enter"))


@pytest.mark.parametrize("size", SIZES)
def test_findings_list(
    snap_compare: SnapCompare, support_workspace: Workspace, size: tuple[int, int]
) -> None:
    assert snap_compare(
        make_app(support_workspace), terminal_size=size, run_before=keys("enter", "f")
    )


@pytest.mark.parametrize("size", SIZES)
def test_example_single_with_pii(
    snap_compare: SnapCompare, support_workspace: Workspace, size: tuple[int, int]
) -> None:
    # The first finding (by line) is the PII email on line 2.
    run_before = keys("enter", "f", "enter")
    assert snap_compare(make_app(support_workspace), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_example_pair_contradiction(
    snap_compare: SnapCompare, support_workspace: Workspace, size: tuple[int, int]
) -> None:
    # Findings by first line: pii 2, invalid_json 3, exact 4, volatile_fact 4 and 5, near 6,
    # contradiction 8.
    run_before = keys("enter", "f", "j", "j", "j", "j", "j", "j", "enter")
    assert snap_compare(make_app(support_workspace), terminal_size=size, run_before=run_before)


@pytest.fixture
def recorded_runs_workspace(empty_workspace: Workspace) -> Workspace:
    from tests.tui.test_runs import copy_recorded_runs

    copy_recorded_runs(empty_workspace)
    return empty_workspace


@pytest.mark.parametrize("size", SIZES)
def test_runs_list(
    snap_compare: SnapCompare, recorded_runs_workspace: Workspace, size: tuple[int, int]
) -> None:
    from tests.tui.test_runs import runs_app

    app = runs_app(recorded_runs_workspace)
    assert snap_compare(app, terminal_size=size, run_before=keys())


@pytest.mark.parametrize("size", SIZES)
def test_run_detail_curves(
    snap_compare: SnapCompare, recorded_runs_workspace: Workspace, size: tuple[int, int]
) -> None:
    from tests.tui.test_runs import runs_app

    app = runs_app(recorded_runs_workspace)
    assert snap_compare(app, terminal_size=size, run_before=keys("enter"))


@pytest.mark.parametrize("size", SIZES)
def test_run_detail_gpu_panel(
    snap_compare: SnapCompare, recorded_runs_workspace: Workspace, size: tuple[int, int]
) -> None:
    from tests.tui.test_runs import runs_app

    app = runs_app(recorded_runs_workspace)
    assert snap_compare(app, terminal_size=size, run_before=keys("enter", "3"))


@pytest.fixture
def evals_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    from tests.tui.test_evals_screen import build_evals_workspace

    project = tmp_path / "project"
    workspace = build_evals_workspace(project)
    monkeypatch.chdir(project)  # the status line shows the workspace path
    return workspace


@pytest.mark.parametrize("size", SIZES)
def test_evals_list(
    snap_compare: SnapCompare, evals_workspace: Workspace, size: tuple[int, int]
) -> None:
    # tuned marked as the baseline (B), tuned-v2 highlighted: its gate verdict in the panel.
    run_before = keys("v", "g", "j", "b", "j")
    assert snap_compare(make_app(evals_workspace), terminal_size=size, run_before=run_before)
