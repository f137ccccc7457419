"""What every ftod screen shares: where data comes from, going back, the search line, how a
failed worker is shown, the requests that open other screens, and cancelling or resuming a run.

Screens never import one another to navigate: they post an `Open…` request and the app,
which knows every screen, pushes the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, cast

from rich.text import Text
from textual import on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerState

from core.runs.rundir import RunPaths
from store.datasets import DatasetRepository, FindingRecord
from store.db import Store
from store.decisions import DecisionRepository
from store.errors import FtodError
from store.evals import EvalRepository
from store.judges import JudgeRepository
from store.prompts import PromptRepository
from store.reviews import ReviewRepository
from store.runs import RunRepository
from store.workspace import Workspace
from tui.widgets.search import SearchBar
from tui.widgets.table import FtodTable


@dataclass(frozen=True, slots=True)
class Repositories:
    """Every repository a screen reads or writes, over one store (built once by the app)."""

    datasets: DatasetRepository
    runs: RunRepository
    evals: EvalRepository
    reviews: ReviewRepository
    judges: JudgeRepository
    prompts: PromptRepository
    decisions: DecisionRepository

    @classmethod
    def over(cls, store: Store) -> Repositories:
        return cls(
            datasets=DatasetRepository(store),
            runs=RunRepository(store),
            evals=EvalRepository(store),
            reviews=ReviewRepository(store),
            judges=JudgeRepository(store),
            prompts=PromptRepository(store),
            decisions=DecisionRepository(store),
        )


class DataSource(Protocol):
    """What screens need from the app: the workspace and the repositories (opened lazily).

    `repos` may open the store (and run migrations), so workers read it from their thread,
    never the UI thread. `repository()` is `repos.datasets`, for the screens that only
    read datasets.
    """

    @property
    def workspace(self) -> Workspace: ...

    @property
    def repos(self) -> Repositories: ...

    def repository(self) -> DatasetRepository: ...


def data_source(app: App[object]) -> DataSource:
    """The running FtodApp seen through the DataSource protocol (kept free of an app import)."""
    return cast(DataSource, app)


def error_text(error: BaseException | None) -> str:
    """The sentence a person reads for an error: FtodError's message, else its type and text."""
    if isinstance(error, FtodError):
        return error.message
    return f"{type(error).__name__}: {error}" if error is not None else "unknown error"


def report_worker_failure(
    screen: Screen[Any],
    event: Worker.StateChanged,
    show_here: Callable[[BaseException | None], None],
    shown_whole: Callable[[str], bool],
) -> None:
    """The dashboard's one worker-failure policy, for every screen and form.

    Workers run with `exit_on_error=False` and let errors rise rather than post failure
    messages of their own (only the runs screen's background index refresh skips a busy
    store, and the launch form keeps a VRAM estimate's error in its panel). A
    failed worker of `screen` is first shown there (`show_here`: a status line, a form's
    error line); then, unless `shown_whole(group)`, it goes to the app as LoadFailed, which
    shows an FtodError as a modal with its title and message, a busy store as a
    notification, and anything else as a modal with its type and text. Worker.StateChanged
    does not bubble, so this is the only way a worker error reaches the app.
    """
    worker = event.worker
    if event.state != WorkerState.ERROR or worker.node is not screen:
        return
    show_here(worker.error)
    if shown_whole(worker.group):
        event.stop()
        return
    screen.post_message(FtodScreen.LoadFailed(worker.error))


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
        """A worker of this screen failed: say so where its data would be (the app shows the
        error too, unless `shows_failure_in_place` says this screen already did)."""

    def shows_failure_in_place(self, group: str) -> bool:
        """Whether a failure of the worker `group` is shown whole by `load_failed` (a form's
        inline error), so the app adds no modal or notification."""
        return False

    @dataclass
    class LoadFailed(Message):
        """A worker of a screen failed; bubbles to the app, which shows the error."""

        error: BaseException | None

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_failure(self, event, self.load_failed, self.shows_failure_in_place)

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


# -- requests for another screen (the app pushes it) ------------------------------------------


@dataclass
class OpenVersion(Message):
    """Show one dataset version: by reference ('name' for the latest, 'name@3')."""

    ref: str


@dataclass
class OpenFindings(Message):
    """Show the findings of a dataset version, all or those of one check (and severity)."""

    version_id: int
    check: str | None = None
    severity: str | None = None


@dataclass
class OpenExample(Message):
    """Show the example (or pair of examples) one finding is about."""

    version_id: int
    finding: FindingRecord


@dataclass
class OpenRun(Message):
    """Show one run's detail screen."""

    run_id: str


@dataclass
class CompareRuns(Message):
    """Show two or more runs side by side."""

    run_ids: tuple[str, ...]


class OpenLaunchForm(Message):
    """Show the form that launches a training run."""


@dataclass
class OpenReviewRoom(Message):
    """Show the review room of a baseline/candidate pair of evals (ids or labels)."""

    baseline: str
    candidate: str
    scorer: str | None = None


# -- cancel and resume -----------------------------------------------------------------------

RunAction = Literal["cancel", "resume"]


class RunControlScreen(FtodScreen):
    """A screen that cancels and resumes runs (the runs list and one run's detail)."""

    @dataclass
    class RunActionDone(Message):
        """A cancel or resume finished in its worker (a failure goes the usual worker way)."""

        summary: str

    def cancel_run(self, run_dir: Path, name: str, state: str | None, is_final: bool) -> None:
        """Ask the trainer to stop; it checkpoints first, so this takes a moment."""
        if is_final:
            self.notify(f"{name} is already {state}.", severity="warning", markup=False)
            return
        self.notify(f"Cancelling {name}: it checkpoints first…", markup=False)
        self._run_action("cancel", RunPaths(run_dir))

    def resume_run(self, run_dir: Path) -> None:
        """Start the trainer again from the run's last checkpoint."""
        self._run_action("resume", RunPaths(run_dir))

    @work(thread=True, exit_on_error=False, group="run-action")
    def _run_action(self, action: RunAction, paths: RunPaths) -> None:
        # Imported here: starting and signalling trainers is needed only when asked.
        from core.runs.launch import cancel_run, resume_run

        if action == "cancel":
            status = cancel_run(paths)
            message = f" ({status.message})" if status.message else ""
            summary = f"{paths.run_id}: {status.state}{message}"
        else:
            summary = f"{paths.run_id}: resumed (pid {resume_run(paths)})"
        self.post_message(self.RunActionDone(summary))

    @on(RunActionDone)
    def _run_action_done(self, message: RunActionDone) -> None:
        self.notify(message.summary, markup=False)
        self.after_run_action()

    def after_run_action(self) -> None:
        """Called once a cancel or resume is done (the runs list polls at once)."""
