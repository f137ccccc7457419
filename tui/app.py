"""The ftod dashboard: `FtodApp(workspace, initial_screen="home")` opens on Home (the CLI
does so; the default is still the datasets screen, which the older tests start on).

The app owns no data: it builds one bundle of repositories (`repos`, on first use, from a
worker thread) and screens read and write the store through it in thread workers. Screens
do not import one another: they post Open… requests that the app turns into the next screen.
A failed screen worker arrives here as FtodScreen.LoadFailed (the policy is
`report_worker_failure`): an FtodError becomes a modal with its title and message, a busy
store a notification; no worker error crashes the app.
"""

from __future__ import annotations

import threading
import time
from typing import ClassVar

from textual import on
from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import CommandPalette
from textual.screen import Screen

from core.gpu import GpuSampler, GpuSnapshot
from store.datasets import DatasetRepository
from store.db import Store
from store.errors import FtodError, StoreBusyError
from store.workspace import Workspace
from tui.commands import FtodCommands
from tui.screens.base import (
    CompareRuns,
    FtodScreen,
    OpenExample,
    OpenFindings,
    OpenLaunchForm,
    OpenReviewRoom,
    OpenRun,
    OpenVersion,
    Repositories,
    error_text,
)
from tui.screens.compare_runs import CompareRunsScreen
from tui.screens.datasets import DatasetsScreen
from tui.screens.decide import DecideScreen
from tui.screens.error import ErrorScreen
from tui.screens.evals import EvalsScreen
from tui.screens.example import ExampleScreen
from tui.screens.findings import FindingsScreen
from tui.screens.help import HelpScreen, help_entries
from tui.screens.home import HomeScreen, OpenStage
from tui.screens.launch import LaunchScreen
from tui.screens.review import ReviewScreen
from tui.screens.run_detail import RunDetailScreen
from tui.screens.runs import RunsScreen
from tui.screens.version import VersionScreen

INITIAL_SCREENS: dict[str, type[Screen[None]]] = {
    "home": HomeScreen,
    "datasets": DatasetsScreen,
    "runs": RunsScreen,
    "evals": EvalsScreen,
}


class FtodApp(App[None]):
    """Keyboard-first dashboard over one workspace."""

    CSS_PATH = "ftod.tcss"
    TITLE = "ftod"
    COMMANDS = App.COMMANDS | {FtodCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", show=False, id="app.quit", tooltip="Leave ftod"),
        Binding("question_mark", "help", "Help", id="app.help", tooltip="The keys of this screen"),
        Binding("t", "runs", "Runs", id="app.runs", tooltip="Training runs, live"),
        Binding(
            "v",
            "evals",
            "Evals",
            show=False,
            id="app.evals",
            tooltip="Every eval; enter opens the review room on a pair",
        ),
        Binding("D", "datasets", "Datasets", show=False, id="app.datasets", tooltip="The datasets"),
        Binding(
            "h",
            "home",
            "Home",
            show=False,
            id="app.home",
            tooltip="The loop on one screen: each stage's status and next action",
        ),
        Binding(
            "d",
            "decide",
            "Decide",
            show=False,
            id="app.decide",
            tooltip="Fine-tune, or don't: symptoms in, verdict and proof out, decisions kept",
        ),
    ]

    def __init__(
        self,
        workspace: Workspace,
        *,
        initial_screen: str = "datasets",
        open_run: str | None = None,
        gpu_sampler: GpuSampler | None = None,
    ) -> None:
        if initial_screen not in INITIAL_SCREENS:
            known = ", ".join(sorted(INITIAL_SCREENS))
            raise ValueError(f"initial_screen {initial_screen!r}: expected one of {known}")
        super().__init__()
        self._workspace = workspace
        self._initial_screen = initial_screen
        self._repos: Repositories | None = None
        self._repos_lock = threading.Lock()
        self._open_run = open_run
        self._gpu_sampler = gpu_sampler
        self._gpu_lock = threading.Lock()

    @property
    def workspace(self) -> Workspace:
        return self._workspace

    @property
    def repos(self) -> Repositories:
        """Every repository over the workspace's store, opening (and migrating) it on first use.

        Read from worker threads, so a slow or locked store never blocks the UI. A store that
        failed to open is tried again on the next read.
        """
        with self._repos_lock:
            if self._repos is None:
                self._repos = Repositories.over(Store.open(self._workspace))
            return self._repos

    def repository(self) -> DatasetRepository:
        """`repos.datasets`, for the screens that read datasets only."""
        return self.repos.datasets

    def get_default_screen(self) -> Screen[None]:
        return INITIAL_SCREENS[self._initial_screen]()

    def on_mount(self) -> None:
        if self._open_run is not None:
            self.push_screen(RunDetailScreen(self._open_run))

    def gpu_snapshot(self) -> GpuSnapshot | None:
        """The latest sample of the one NVML sampler thread (started on first use)."""
        with self._gpu_lock:
            if self._gpu_sampler is None:
                self._gpu_sampler = GpuSampler(interval=1.0)
            sampler = self._gpu_sampler
            if not sampler.running and not sampler.history():
                sampler.start()
                # Called from a worker thread: waiting for the first sample (NVML init, or
                # the "no GPU" verdict) keeps the first paint from saying "sampling…".
                deadline = time.monotonic() + 2.0
                while sampler.latest() is None and time.monotonic() < deadline:
                    time.sleep(0.01)
        return sampler.latest()

    def on_unmount(self) -> None:
        if self._gpu_sampler is not None and self._gpu_sampler.running:
            self._gpu_sampler.stop(timeout=2)

    def _show_screen_kind(self, kind: type[Screen[None]]) -> None:
        if isinstance(self.screen, kind):
            return
        for index, screen in enumerate(self.screen_stack):
            if isinstance(screen, kind):
                # Already open below: go back to it instead of stacking another.
                while len(self.screen_stack) > index + 1:
                    self.pop_screen()
                return
        self.push_screen(kind())

    def action_runs(self) -> None:
        self._show_screen_kind(RunsScreen)

    def action_evals(self) -> None:
        self._show_screen_kind(EvalsScreen)

    def action_datasets(self) -> None:
        self._show_screen_kind(DatasetsScreen)

    def action_home(self) -> None:
        self._show_screen_kind(HomeScreen)

    def action_decide(self) -> None:
        self._show_screen_kind(DecideScreen)

    def action_help(self) -> None:
        screen = self.screen
        if isinstance(screen, HelpScreen | CommandPalette):
            return
        title = screen.sub_title or screen.title or "ftod"
        self.push_screen(HelpScreen(str(title), help_entries(self, screen)))

    # -- the Open… requests of the screens ----------------------------------------------------
    @on(OpenVersion)
    def _open_version(self, event: OpenVersion) -> None:
        self.push_screen(VersionScreen(ref=event.ref))

    @on(OpenFindings)
    def _open_findings(self, event: OpenFindings) -> None:
        self.push_screen(FindingsScreen(event.version_id, event.check, event.severity))

    @on(OpenExample)
    def _open_example(self, event: OpenExample) -> None:
        self.push_screen(ExampleScreen(event.version_id, event.finding))

    @on(OpenRun)
    def _show_run(self, event: OpenRun) -> None:
        self.push_screen(RunDetailScreen(event.run_id))

    @on(CompareRuns)
    def _compare_runs(self, event: CompareRuns) -> None:
        self.push_screen(CompareRunsScreen(event.run_ids))

    @on(OpenLaunchForm)
    def _open_launch_form(self) -> None:
        self.push_screen(LaunchScreen())

    @on(OpenReviewRoom)
    def _open_review_room(self, event: OpenReviewRoom) -> None:
        self.push_screen(ReviewScreen(event.baseline, event.candidate, event.scorer))

    @on(LaunchScreen.RunLaunched)
    def _open_launched_run(self, event: LaunchScreen.RunLaunched) -> None:
        if isinstance(self.screen, LaunchScreen):
            self.pop_screen()
        self.notify(f"Run {event.run_id} started", title="Launched", markup=False)
        self.push_screen(RunDetailScreen(event.run_id))

    @on(OpenStage)
    def _open_stage(self, event: OpenStage) -> None:
        target = event.stage.target
        if target is None:
            return
        if target.screen == "datasets":
            self._show_screen_kind(DatasetsScreen)
        elif target.screen == "decide":
            self._show_screen_kind(DecideScreen)
        elif target.screen == "version":
            self.push_screen(VersionScreen(ref=target.ref))
        elif target.screen == "evals":
            self._show_screen_kind(EvalsScreen)
        elif target.screen == "runs":
            self._show_screen_kind(RunsScreen)
        elif target.screen == "run":
            self.push_screen(RunDetailScreen(target.ref))
        else:
            self.push_screen(ReviewScreen(target.ref, target.other))

    @on(FtodScreen.LoadFailed)
    def _show_worker_error(self, event: FtodScreen.LoadFailed) -> None:
        error = event.error
        if isinstance(error, StoreBusyError):
            self.notify(
                error.message, title=error.title, severity="warning", timeout=10, markup=False
            )
        elif isinstance(error, FtodError):
            self.push_screen(ErrorScreen(error.title, error.message))
        else:
            self.log.error(f"a worker failed: {error!r}")
            self.push_screen(ErrorScreen("Unexpected error", error_text(error)))
