"""The runs screens with Pilot: recorded runs, hand-made run directories, and a live run.

Live behaviour is driven through real files (and one real trainer process); waits poll
the screen's own state with a deadline instead of sleeping a fixed time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.pilot import Pilot

from core.gpu import GpuSampler, GpuSnapshot
from core.runs.rundir import (
    EventWriter,
    RunPaths,
    RunStatus,
    atomic_write_json,
    iter_records,
    observed_status,
    process_start_time,
    write_status,
)
from store.workspace import Workspace
from tests.tui.helpers import plain, press, settle
from tui.app import FtodApp
from tui.screens.compare_runs import CompareRunsScreen
from tui.screens.run_detail import RunDetailScreen
from tui.screens.runs import RunsScreen

REPO = Path(__file__).resolve().parents[2]
RECORDED_RUNS = REPO / "sample_runs" / "runs"
NO_GPU = "no NVIDIA GPU: NVML library not found"


def shown(widget: Any, width: int = 120) -> str:
    """The text a Static shows, whether it holds Text, a string or a Rich renderable."""
    content = widget.content
    if isinstance(content, Text):
        return content.plain
    if isinstance(content, str):
        return content
    return plain(content, width=width)


def fixed_gpu_sampler() -> GpuSampler:
    """The no-GPU state every CI machine has, without depending on the host's NVML."""
    return GpuSampler(
        sample=lambda: GpuSnapshot(time=0.0, unavailable=NO_GPU), sample_processes=None
    )


def runs_app(workspace: Workspace, **kwargs: Any) -> FtodApp:
    app = FtodApp(workspace, initial_screen="runs", gpu_sampler=fixed_gpu_sampler(), **kwargs)
    app.animation_level = "none"
    return app


async def wait_for(pilot: Pilot[None], condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until `condition` held; fails after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        await pilot.pause(0.02)
    raise AssertionError(f"condition not met within {timeout} s")


def copy_recorded_runs(workspace: Workspace) -> list[str]:
    run_ids = []
    for run in sorted(RECORDED_RUNS.iterdir()):
        if (run / "run.json").is_file():
            shutil.copytree(run, workspace.runs_dir / run.name)
            run_ids.append(run.name)
    assert run_ids, "sample_runs/runs holds the recorded run"
    return run_ids


def make_run(
    workspace: Workspace,
    run_id: str,
    *,
    state: str = "running",
    pid: int | None = None,
    config: dict[str, Any] | None = None,
    steps: int = 0,
) -> RunPaths:
    paths = RunPaths(workspace.runs_dir / run_id)
    paths.root.mkdir(parents=True)
    atomic_write_json(
        paths.run_json,
        {
            "run_id": run_id,
            "name": run_id,
            "created_at": 1_790_000_000.0,
            "source": "ftod",
            "config": config or {"train": {"lr": 0.001, "seed": 0}},
            "lineage": {"seed": 0},
        },
    )
    write_status(
        paths,
        RunStatus(
            run_id=run_id,
            state=state,
            pid=pid,
            pid_started=process_start_time(pid) if pid else None,
            step=steps,
            total_steps=100,
            started_at=1_790_000_000.0,
        ),
    )
    with EventWriter(paths.events) as events:
        events.write({"type": "start", "time": 1_790_000_000.0, "step": 0, "total_steps": 100})
        for step in range(1, steps + 1):
            events.write(train_event(step))
    return paths


def train_event(step: int) -> dict[str, Any]:
    return {
        "type": "train",
        "time": 1_790_000_000.0 + step,
        "step": step,
        "loss": 3.0 / step,
        "lr": 1e-3,
        "grad_norm": 0.5,
        "tokens": 1000,
        "tokens_per_s": 2000.0,
    }


def runs_screen(app: FtodApp) -> RunsScreen:
    screen = app.screen
    assert isinstance(screen, RunsScreen)
    return screen


async def test_a_logged_step_is_on_screen_within_a_second(empty_workspace: Workspace) -> None:
    paths = make_run(empty_workspace, "live", pid=os.getpid(), steps=2)
    app = runs_app(empty_workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = runs_screen(app)
        await wait_for(pilot, lambda: bool(screen.views) and screen.views[0].step == 2, 5)
        assert screen.views[0].state == "running"
        with EventWriter(paths.events) as events:
            events.write(train_event(3))
        waited = await wait_for(pilot, lambda: screen.views[0].step == 3, 5)
        assert waited < 1.0
        assert screen.views[0].loss == pytest.approx(1.0)


async def test_a_dead_trainer_shows_as_interrupted(empty_workspace: Workspace) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    make_run(empty_workspace, "orphan", pid=finished.pid, steps=4)
    app = runs_app(empty_workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = runs_screen(app)
        await wait_for(pilot, lambda: bool(screen.views), 5)
        assert screen.views[0].state == "interrupted"
        assert screen.views[0].step == 4
        assert "resume" in (screen.views[0].message or "")


async def test_no_gpu_state_is_named(empty_workspace: Workspace) -> None:
    make_run(empty_workspace, "cpu-run", state="succeeded", steps=3)
    app = runs_app(empty_workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert "no NVIDIA GPU (NVML library not found)" in shown(runs_screen(app).status)
        await press(pilot, "enter", "3")
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        assert "No NVIDIA GPU" in shown(detail.gpu_panel)


async def test_recorded_run_detail_shows_every_logged_point(empty_workspace: Workspace) -> None:
    (run_id,) = copy_recorded_runs(empty_workspace)[:1]
    logged = [r for r in iter_records(empty_workspace.runs_dir / run_id / "events.jsonl")]
    train = [r for r in logged if r["type"] == "train"]
    evals = [r for r in logged if r["type"] == "eval"]
    app = runs_app(empty_workspace, open_run=run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, RunDetailScreen)
        await wait_for(pilot, lambda: screen.snapshot is not None, 10)
        snapshot = screen.snapshot
        assert snapshot is not None
        assert snapshot.view.state == "succeeded"
        assert len(snapshot.series.train_steps) == len(train)
        assert len(snapshot.series.eval_steps) == len(evals)
        await settle(pilot)
        assert screen.loss_chart.logged == len(train) + len(evals)
        await press(pilot, "l", "z", "e")
        assert screen.loss_chart.logged >= 1
        await press(pilot, "5")
        lineage = shown(screen.query_one("#run-lineage"))
        assert "dataset_sha256" in lineage and "config_hash" in lineage


async def test_compare_shows_only_what_differs(empty_workspace: Workspace) -> None:
    make_run(
        empty_workspace, "a", state="succeeded", steps=5, config={"train": {"lr": 0.001, "seed": 0}}
    )
    make_run(
        empty_workspace,
        "b",
        state="succeeded",
        steps=8,
        config={"train": {"lr": 0.0002, "seed": 0}},
    )
    app = runs_app(empty_workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "space", "down", "space", "c")
        screen = app.screen
        assert isinstance(screen, CompareRunsScreen)
        await wait_for(pilot, lambda: len(screen.runs) == 2, 5)
        table = shown(screen.query_one("#compare-table"))
        assert "config.train.lr" in table and "0.0002" in table
        assert "config.train.seed" not in table
        assert screen.chart.logged == 13


async def test_compare_needs_two_marked_runs(empty_workspace: Workspace) -> None:
    make_run(empty_workspace, "only", state="succeeded", steps=2)
    app = runs_app(empty_workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "c")
        assert isinstance(app.screen, RunsScreen)


async def test_empty_workspace_says_how_to_start(empty_workspace: Workspace) -> None:
    app = runs_app(empty_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = runs_screen(app)
        assert screen.empty_panel.display
        assert "ftod train CONFIG.yaml" in shown(screen.empty_panel)


async def test_t_and_shift_d_move_between_datasets_and_runs(empty_workspace: Workspace) -> None:
    app = FtodApp(empty_workspace, gpu_sampler=fixed_gpu_sampler())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "t")
        assert isinstance(app.screen, RunsScreen)
        await press(pilot, "D")
        assert not isinstance(app.screen, RunsScreen)
        assert len(app.screen_stack) == 1


# -- a real trainer ----------------------------------------------------------------------
@pytest.fixture
def live_run_workspace(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    from core.datasets import add_dataset, split_dataset
    from store.datasets import DatasetRepository
    from store.db import Store
    from store.workspace import init_workspace
    from tests.test_training import training_rows
    from tests.tui.helpers import write_jsonl as write_lines

    project = tmp_path / "live"
    project.mkdir()
    workspace, _ = init_workspace(project)
    repository = DatasetRepository(Store.open(workspace))
    source = write_lines(project / "d.jsonl", [json.dumps(row) for row in training_rows()])
    add_dataset(workspace, repository, source, "support")
    split_dataset(repository, "support@1", val=0.2, test=0.0, seed=0)
    monkeypatch.chdir(project)
    return workspace, repository


async def test_dashboard_closed_mid_run_reattaches_to_the_whole_history(
    live_run_workspace: Any, tiny_model_dir: Path
) -> None:
    from core.runs.launch import cancel_run, prepare_run, start_trainer
    from tests.test_training import tiny_config

    workspace, repository = live_run_workspace
    prepared = prepare_run(
        workspace,
        repository,
        tiny_config(tiny_model_dir, max_steps=5000, save_every=5000, eval_every=5),
    )
    start_trainer(prepared.paths)
    paths = prepared.paths
    try:
        first = runs_app(workspace)
        async with first.run_test(size=(100, 30)) as pilot:
            screen = runs_screen(first)
            await wait_for(pilot, lambda: bool(screen.views) and screen.views[0].step >= 3, 120)
            assert screen.views[0].state == "running"
            seen_before_exit = screen.views[0].logged_steps
        # The dashboard is gone; training is not.
        deadline = time.monotonic() + 60
        while _logged(paths) < seen_before_exit + 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        status = observed_status(paths)
        assert status is not None and status.state == "running"

        second = runs_app(workspace, open_run=paths.run_id)
        async with second.run_test(size=(100, 30)) as pilot:
            detail = second.screen
            assert isinstance(detail, RunDetailScreen)
            await wait_for(pilot, lambda: detail.snapshot is not None, 10)
            snapshot = detail.snapshot
            assert snapshot is not None
            assert snapshot.series.train_steps[:3] == [1, 2, 3], "history from the first step"
            assert len(snapshot.series.train_steps) >= seen_before_exit + 5
            assert snapshot.series.eval_steps, "val loss logged every 5 steps is there"
            await press(pilot, "x")
            await wait_for(
                pilot,
                lambda: detail.snapshot is not None and detail.snapshot.view.state == "cancelled",
                90,
            )
    finally:
        status = observed_status(paths)
        if status is not None and not status.is_final:
            cancel_run(paths, grace_seconds=30)


def _logged(paths: RunPaths) -> int:
    return sum(1 for r in iter_records(paths.events) if r.get("type") == "train")


async def test_a_poisoned_run_directory_leaves_the_runs_screen_and_index_working(
    empty_workspace: Workspace,
) -> None:
    from store.db import Store
    from store.runs import RunRepository

    make_run(empty_workspace, "good", state="succeeded", steps=3)
    # Values no runs index holds, written by hand: a status step past BIGINT and a token
    # count past HUGEINT.
    bad_status = make_run(empty_workspace, "bad-status", state="succeeded", steps=2)
    write_status(bad_status, RunStatus(run_id="bad-status", state="succeeded", step=2**64))
    bad_tokens = make_run(empty_workspace, "bad-tokens", state="succeeded", steps=2)
    with EventWriter(bad_tokens.events) as events:
        events.write({**train_event(3), "tokens": 10**40})
    app = runs_app(empty_workspace)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = runs_screen(app)
        await wait_for(pilot, lambda: len(screen.views) == 3, 5)
        await wait_for(
            pilot,
            lambda: (
                not any(w.group == "runs-ingest" and w.is_running for w in screen.workers)
                and bool(RunRepository(Store.open(empty_workspace)).list_runs())
            ),
            10,
        )
        assert "Could not read runs" not in shown(screen.status)
        assert isinstance(app.screen, RunsScreen)  # no error modal over it
        assert {view.run_id for view in screen.views} == {"good", "bad-status", "bad-tokens"}
    indexed = RunRepository(Store.open(empty_workspace)).list_runs()
    assert [record.run_id for record in indexed] == ["good"]
