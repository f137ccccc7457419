"""Snapshots of the review room at 80×24 (the SSH floor) and 120×40: the slice table with the
gate and judge columns, the judge's line, and baseline | candidate with the word diff.

Regenerate with `pytest tests/tui/test_review_snapshots.py --snapshot-update` and look at
the SVGs before committing them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from core.evals.service import run_gate
from store.db import Store
from store.evals import EvalRepository
from store.workspace import Workspace
from tests.test_review import build_pair_workspace
from tests.tui.helpers import press, settle
from tests.tui.test_review import store_judge_run
from tui.cli_review import review_app

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
SnapCompare = Callable[..., bool]
GATE = """scorer: exact
margin: 0.05
rules:
  - {slice: billing, kind: target}
  - {slice: shipping, kind: regression}
"""


@pytest.fixture
def judged_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("FTOD_REVIEWER", "alice")
    workspace = build_pair_workspace(tmp_path / "project")
    spec = tmp_path / "gate.yaml"
    spec.write_text(GATE)
    run_gate(EvalRepository(Store.open(workspace)), spec, "base", "tuned")
    store_judge_run(workspace)
    return workspace


@pytest.mark.parametrize("size", SIZES)
def test_review_room(
    snap_compare: SnapCompare, judged_pair: Workspace, size: tuple[int, int]
) -> None:
    app = review_app(judged_pair, "base", "tuned", None)
    app.animation_level = "none"

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await press(pilot, "2")  # line 1 judged by alice; line 2 (a regression) in view
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
