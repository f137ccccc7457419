"""Every training run of the workspace, live: state, progress, ETA, loss, val loss, tokens/s.

Run directories are polled twice a second by a thread worker (a stat and a small read per
run), so a logged step is on screen within a second and a dead trainer shows as
`interrupted` on the next poll. The store's index is refreshed less often, in its own
worker, and never blocks the table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker

from core.gpu import GpuSnapshot
from core.runs.monitor import RunsMonitor, RunView
from tui.formatting import display_path, format_duration, format_metric, format_rate, state_text
from tui.screens.base import CompareRuns, OpenLaunchForm, OpenRun, RunControlScreen, error_text
from tui.widgets.table import FtodTable

POLL_SECONDS = 0.5
INGEST_SECONDS = 15.0
EMPTY_TEXT = Text.assemble(
    ("No runs yet.\n\n", "bold"),
    "Launch a LoRA run from a YAML config:\n\n",
    ("    ftod train CONFIG.yaml\n\n", "bold green"),
    "or press ",
    ("n", "bold reverse"),
    " for the launch form. Runs made elsewhere come in with\n",
    ("    ftod runs import trainer_state.json\n", "bold green"),
)
COLUMNS: tuple[tuple[str | Text, str], ...] = (
    ("", "mark"),
    ("name", "name"),
    ("state", "state"),
    ("progress", "progress"),
    (Text("step", justify="right"), "step"),
    (Text("ETA", justify="right"), "eta"),
    (Text("loss", justify="right"), "loss"),
    (Text("best val", justify="right"), "best"),
    (Text("tok/s", justify="right"), "tps"),
    ("GPU", "gpu"),
)


def progress_bar(fraction: float | None, width: int = 10) -> Text:
    if fraction is None:
        return Text("·" * width, style="dim")
    filled = round(fraction * width)
    return Text.assemble(("█" * filled, "green"), ("░" * (width - filled), "dim"))


def gpu_summary(snapshot: GpuSnapshot | None) -> Text:
    if snapshot is None:
        return Text("GPU: sampling…", style="dim")
    if not snapshot.devices:
        reason = (snapshot.unavailable or "no NVIDIA GPU").removeprefix("no NVIDIA GPU: ")
        return Text(f"no NVIDIA GPU ({reason})", style="dim")
    parts = []
    for device in snapshot.devices:
        used = device.memory_used
        total = device.memory_total
        memory = (
            f"{used / 2**30:.1f}/{total / 2**30:.0f} GiB"
            if used is not None and total is not None
            else "N/A"
        )
        util = f"{device.utilization:.0f}%" if device.utilization is not None else "N/A"
        parts.append(f"GPU{device.index} {memory} {util}")
    return Text("  ".join(parts), style="dim")


class RunsScreen(RunControlScreen):
    """A live table of runs; enter opens one, space marks runs to compare."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "launch", "New run", id="runs.launch", tooltip="Open the launch form"),
        Binding(
            "space", "mark", "Mark", id="runs.mark", tooltip="Mark or unmark the run to compare"
        ),
        Binding("c", "compare", "Compare", id="runs.compare", tooltip="Compare the marked runs"),
        Binding(
            "x", "cancel_run", "Cancel run", id="runs.cancel", tooltip="Cancel the highlighted run"
        ),
        Binding(
            "R",
            "resume_run",
            "Resume",
            id="runs.resume",
            tooltip="Resume the highlighted run from its last checkpoint",
        ),
    ]

    @dataclass
    class RunsPolled(Message):
        """Fresh views of every run, read from their directories in a worker."""

        views: tuple[RunView, ...]
        gpu: GpuSnapshot | None

    def __init__(self) -> None:
        super().__init__()
        self._views: tuple[RunView, ...] = ()
        self._marked: list[str] = []
        self._loaded = False
        self._monitor: RunsMonitor | None = None
        self._poll_timer: Timer | None = None
        self._last_ingest = 0.0
        self._gpu: GpuSnapshot | None = None
        self._poll_worker: Worker[None] | None = None

    @property
    def table(self) -> FtodTable:
        return self.query_one("#runs-table", FtodTable)

    @property
    def status(self) -> Static:
        return self.query_one("#runs-status", Static)

    @property
    def empty_panel(self) -> Static:
        return self.query_one("#runs-empty", Static)

    @property
    def views(self) -> tuple[RunView, ...]:
        return self._views

    @property
    def marked(self) -> tuple[str, ...]:
        return tuple(self._marked)

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(id="runs-status", classes="status-line")
        yield FtodTable(id="runs-table")
        yield Static(EMPTY_TEXT, id="runs-empty", classes="empty-panel")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "runs"
        for label, key in COLUMNS:
            self.table.add_column(label, key=key)
        self.table.loading = True
        self.empty_panel.display = False
        self._monitor = RunsMonitor(self.source.workspace.runs_dir)
        self.poll_now()
        self._poll_timer = self.set_interval(POLL_SECONDS, self.poll_now)

    def on_screen_suspend(self) -> None:
        if self._poll_timer is not None:
            self._poll_timer.pause()

    def on_screen_resume(self) -> None:
        if self._poll_timer is not None:
            self._poll_timer.resume()
            self.poll_now()

    # -- polling ---------------------------------------------------------------------------
    def poll_now(self) -> None:
        # Back-pressure: a tick that finds the previous poll still reading (a slow disk, a
        # busy machine) is skipped rather than cancelling it, so polls never starve.
        if self._monitor is not None and not self._polling():
            self._poll_worker = self._poll(self._monitor)
        if time.monotonic() - self._last_ingest >= INGEST_SECONDS:
            self._last_ingest = time.monotonic()
            self._ingest()

    def _polling(self) -> bool:
        return self._poll_worker is not None and self._poll_worker.is_running

    @work(thread=True, exit_on_error=False, group="runs-poll")
    def _poll(self, monitor: RunsMonitor) -> None:
        views = tuple(monitor.poll())
        gpu = getattr(self.app, "gpu_snapshot", lambda: None)()
        self.post_message(self.RunsPolled(views, gpu))

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-ingest")
    def _ingest(self) -> None:
        # Keeps the store's index (runs list/show/compare from the CLI) current while the
        # dashboard is open; the table itself never waits for it.
        from core.runs.ingest import ingest_runs
        from store.errors import StoreBusyError

        try:
            source = self.source
            ingest_runs(source.workspace, source.repos.runs)
        except StoreBusyError:
            pass  # the CLI holds the store: this refresh is skipped, the next one catches up

    @on(RunsPolled)
    def _show_runs(self, message: RunsPolled) -> None:
        first = not self._loaded
        self._loaded = True
        self.table.loading = False
        changed = message.views != self._views
        self._views = message.views
        known = {view.run_id for view in self._views}
        self._marked = [run_id for run_id in self._marked if run_id in known]
        if changed or first:
            self._fill_table()
        self._gpu = message.gpu
        self.status.update(self._status_text(message.gpu))
        if first and not self.app.focused:
            self.table.focus()

    def load_failed(self, error: BaseException | None) -> None:
        self.table.loading = False
        self.status.update(Text.assemble(("Could not read runs: ", "bold red"), error_text(error)))

    def _fill_table(self) -> None:
        table = self.table
        selected = self.selected_run_id()
        table.clear()
        for view in self._views:
            table.add_row(*self._cells(view), key=view.run_id)
        if selected is not None and selected in {v.run_id for v in self._views}:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        empty = self._loaded and not self._views
        self.empty_panel.display = empty
        table.display = not empty

    def _cells(self, view: RunView) -> tuple[str | Text, ...]:
        step = f"{view.step}" + (f"/{view.total_steps}" if view.total_steps else "")
        progress = progress_bar(view.progress)
        if view.source != "ftod":
            progress = Text("imported", style="dim")
        return (
            Text("●", style="bold magenta") if view.run_id in self._marked else Text(" "),
            Text(view.name, style="bold"),
            state_text(view),
            progress,
            Text(step, justify="right"),
            Text(format_duration(view.eta_seconds), justify="right"),
            Text(format_metric(view.loss), justify="right"),
            Text(format_metric(view.best_val_loss), justify="right"),
            Text(format_rate(view.tokens_per_s), justify="right"),
            Text(_short_gpu(view.gpu_name), style="dim"),
        )

    def _status_text(self, gpu: GpuSnapshot | None) -> Text:
        running = sum(1 for view in self._views if view.state == "running")
        text = Text(f"{len(self._views)} runs", style="bold")
        if running:
            text.append(f", {running} running", style="bold green")
        if self._marked:
            text.append(f"  ·  {len(self._marked)} marked (c compares)", style="magenta")
        text.append("  ·  ")
        text.append_text(gpu_summary(gpu))
        text.append(f"  ·  {display_path(self.source.workspace.runs_dir)}", style="dim")
        return text

    def selected_run_id(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return None if key.value is None else str(key.value)

    def _selected_view(self) -> RunView | None:
        run_id = self.selected_run_id()
        return next((view for view in self._views if view.run_id == run_id), None)

    # -- actions -------------------------------------------------------------------------
    @on(DataTable.RowSelected, "#runs-table")
    def _open_run(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.post_message(OpenRun(str(event.row_key.value)))

    def action_mark(self) -> None:
        run_id = self.selected_run_id()
        if run_id is None:
            return
        if run_id in self._marked:
            self._marked.remove(run_id)
        else:
            self._marked.append(run_id)
        self._fill_table()
        self.status.update(self._status_text(self._gpu))

    def action_compare(self) -> None:
        chosen = list(self._marked)
        if len(chosen) < 2:
            self.notify("Mark two or more runs with space, then press c.", severity="warning")
            return
        self.post_message(CompareRuns(tuple(chosen)))

    def action_launch(self) -> None:
        self.post_message(OpenLaunchForm())

    def action_cancel_run(self) -> None:
        view = self._selected_view()
        if view is not None:
            self.cancel_run(Path(view.run_dir), view.name, view.state, view.is_final)

    def action_resume_run(self) -> None:
        view = self._selected_view()
        if view is not None:
            self.resume_run(Path(view.run_dir))

    def after_run_action(self) -> None:
        self.poll_now()


def _short_gpu(name: str | None) -> str:
    if not name:
        return "cpu"
    return name.replace("NVIDIA ", "").replace("GeForce ", "")[:14]
