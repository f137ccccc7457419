"""One run: loss curves, lr / grad norm / tokens/s, the GPU memory story, config, lineage, log.

Everything comes from the run directory, tailed by a thread worker twice a second; the
UI thread only redraws from the snapshots the worker posts. Reopening the dashboard on a
run that kept training shows its whole history, because the history is the files.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane
from textual.worker import Worker

from core.gpu import GpuSnapshot, TorchMemory
from core.runs.monitor import RunTail, RunView, Series, SystemTail, log_tail
from core.runs.rundir import RunPaths
from tui.formatting import format_duration, format_metric, format_rate, state_text
from tui.screens.base import RunControlScreen, error_text
from tui.widgets.charts import ChartSeries, LossChart, MetricChart
from tui.widgets.gpu_panel import GpuPanel
from tui.widgets.scroll import ScrollPane

POLL_SECONDS = 0.5
LOG_LINES = 300
EMA_WEIGHTS = (0.9, 0.98, 0.6, 0.0)
ZOOMS: tuple[int | None, ...] = (None, 1000, 200, 50)
TABS = (
    ("curves", "Curves"),
    ("metrics", "Metrics"),
    ("gpu", "GPU"),
    ("config", "Config"),
    ("lineage", "Lineage"),
    ("log", "Log"),
)


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """What the screen draws, copied out of the worker's tail."""

    view: RunView
    series: Series
    run: dict[str, Any]
    lineage: dict[str, Any]
    system: tuple[GpuSnapshot, ...]
    torch_memory: TorchMemory | None
    log: tuple[str, ...] | None
    config_text: str
    """The run's config.yaml as written, else its config as JSON (read by the worker)."""


class RunDetailScreen(RunControlScreen):
    """Detail of one run; updates live while it trains."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "toggle_log", "Log y", id="run.log_y", tooltip="Toggle a log-scale y axis"),
        Binding("z", "zoom", "Zoom", id="run.zoom", tooltip="All steps / the most recent ones"),
        Binding("e", "ema", "EMA", id="run.ema", tooltip="Change the EMA smoothing weight"),
        Binding("x", "cancel_run", "Cancel", id="run.cancel", tooltip="Cancel this run"),
        Binding("R", "resume_run", "Resume", id="run.resume", tooltip="Resume from checkpoint"),
        *(
            Binding(
                str(number),
                f"tab('{tab_id}')",
                title,
                show=False,
                id=f"run.tab.{tab_id}",
                tooltip=f"Show the {title} tab",
            )
            for number, (tab_id, title) in enumerate(TABS, start=1)
        ),
    ]

    @dataclass
    class RunPolled(Message):
        snapshot: RunSnapshot

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self._tail: RunTail | None = None
        self._system: SystemTail | None = None
        self._log_size = -1
        self._snapshot: RunSnapshot | None = None
        self._log_y = False
        self._zoom_index = 0
        self._ema_index = 0
        self._timer: Timer | None = None
        self._static_tabs_filled = False
        self._poll_worker: Worker[None] | None = None

    @property
    def snapshot(self) -> RunSnapshot | None:
        return self._snapshot

    @property
    def loss_chart(self) -> LossChart:
        return self.query_one("#run-loss", LossChart)

    @property
    def header_line(self) -> Static:
        return self.query_one("#run-header", Static)

    @property
    def gpu_panel(self) -> GpuPanel:
        return self.query_one("#run-gpu", GpuPanel)

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(id="run-header", classes="status-line")
        with TabbedContent(id="run-tabs", initial="curves"):
            with TabPane("Curves", id="curves"):
                yield LossChart(id="run-loss")
                yield Static(id="run-curve-caption", classes="caption")
            with TabPane("Metrics", id="metrics"), Vertical():
                yield MetricChart(id="run-lr")
                yield MetricChart(id="run-grad")
                yield MetricChart(id="run-tps")
            with TabPane("GPU", id="gpu"), ScrollPane():
                yield GpuPanel(id="run-gpu")
            with TabPane("Config", id="config"), ScrollPane():
                yield Static(id="run-config")
            with TabPane("Lineage", id="lineage"), ScrollPane():
                yield Static(id="run-lineage")
            with TabPane("Log", id="log"), ScrollPane(id="run-log-scroll"):
                yield Static(id="run-log")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"run {self.run_id}"
        self.header_line.update(Text("reading the run directory…", style="dim"))
        workspace = self.source.workspace
        paths = RunPaths(workspace.runs_dir / self.run_id)
        self._tail = RunTail(paths)
        self._system = SystemTail(paths.system)
        self.poll_now()
        self._timer = self.set_interval(POLL_SECONDS, self.poll_now)

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_screen_resume(self) -> None:
        if self._timer is not None:
            self._timer.resume()

    # -- polling ---------------------------------------------------------------------------
    def poll_now(self) -> None:
        # A tick that finds the previous poll still reading is skipped, not cancelled.
        busy = self._poll_worker is not None and self._poll_worker.is_running
        if self._tail is not None and self._system is not None and not busy:
            self._poll_worker = self._poll(self._tail, self._system)

    @work(thread=True, exit_on_error=False, group="run-poll")
    def _poll(self, tail: RunTail, system: SystemTail) -> None:
        before = (tail.offset, tail.view)
        view = tail.poll()
        new_samples = system.poll()
        log: tuple[str, ...] | None = None
        try:
            size = tail.paths.log.stat().st_size
        except FileNotFoundError:
            size = 0
        if size != self._log_size:
            self._log_size = size
            log = tuple(log_tail(tail.paths.log, LOG_LINES)[0])
        first = self._snapshot is None
        if not first and (tail.offset, view) == before and not new_samples and log is None:
            return
        series = tail.series.copy()
        torch_memory = _torch_memory(series)
        self.post_message(
            self.RunPolled(
                RunSnapshot(
                    view=view,
                    series=series,
                    run=dict(tail.run),
                    lineage=tail.lineage,
                    system=tuple(system.snapshots),
                    torch_memory=torch_memory,
                    log=log,
                    config_text=config_text(Path(view.run_dir), tail.run),
                )
            )
        )

    @on(RunPolled)
    def _show(self, message: RunPolled) -> None:
        previous = self._snapshot
        snapshot = message.snapshot
        if snapshot.log is None and previous is not None:
            snapshot = replace(snapshot, log=previous.log)
        self._snapshot = snapshot
        self.header_line.update(self._header_text(snapshot.view))
        self._draw_curves()
        self._draw_metrics()
        self.gpu_panel.show(list(snapshot.system), snapshot.torch_memory)
        if message.snapshot.log is not None:
            self.query_one("#run-log", Static).update(Text("\n".join(snapshot.log or ())))
        if not self._static_tabs_filled or not snapshot.view.is_final:
            self._fill_config_and_lineage(snapshot)
            self._static_tabs_filled = snapshot.view.is_final

    def load_failed(self, error: BaseException | None) -> None:
        self.header_line.update(
            Text.assemble(("Could not read the run: ", "bold red"), error_text(error))
        )

    def _header_text(self, view: RunView) -> Text:
        text = Text()
        text.append(view.name, style="bold")
        text.append("  ")
        text.append_text(state_text(view))
        total = f"/{view.total_steps}" if view.total_steps else ""
        text.append(f"  step {view.step}{total}")
        if view.state == "running":
            text.append(f"  ETA {format_duration(view.eta_seconds)}")
        text.append(f"  loss {format_metric(view.loss)}")
        text.append(f"  val {format_metric(view.val_loss)}")
        if view.best_val_loss is not None:
            text.append(f" (best {format_metric(view.best_val_loss)} @ {view.best_val_step})")
        text.append(f"  {format_rate(view.tokens_per_s)} tok/s")
        if view.message and view.state not in ("running",):
            style = "red" if view.state == "failed" else "yellow"
            text.append(f"\n{view.message}", style=style)
        return text

    def _draw_curves(self) -> None:
        snapshot = self._snapshot
        if snapshot is None:
            return
        series = snapshot.series
        self.loss_chart.update_run(
            series.train_steps,
            series.loss,
            series.eval_steps,
            series.val_loss,
            ema_weight=EMA_WEIGHTS[self._ema_index],
            log_y=self._log_y,
            last_steps=ZOOMS[self._zoom_index],
            resume_steps=series.resume_steps,
        )
        zoom = ZOOMS[self._zoom_index]
        caption = Text(
            f"EMA weight {EMA_WEIGHTS[self._ema_index]:.2f} (e)  ·  "
            f"{'log' if self._log_y else 'linear'} y (l)  ·  "
            f"{'all steps' if zoom is None else f'last {zoom} steps'} (z)  ·  "
            f"{len(series.train_steps)} train / {len(series.eval_steps)} eval points logged",
            style="dim",
        )
        if series.resume_steps:
            caption.append(
                f"  ·  resumed at step {', '.join(map(str, series.resume_steps))}", style="yellow"
            )
        self.query_one("#run-curve-caption", Static).update(caption)

    def _draw_metrics(self) -> None:
        snapshot = self._snapshot
        if snapshot is None:
            return
        series = snapshot.series
        zoom = ZOOMS[self._zoom_index]
        for widget_id, title, values, color in (
            ("#run-lr", "learning rate", series.lr, "cyan"),
            ("#run-grad", "grad norm", series.grad_norm, "magenta"),
            ("#run-tps", "tokens/s", series.tokens_per_s, "green"),
        ):
            xs = [
                float(s) for s, v in zip(series.train_steps, values, strict=True) if v is not None
            ]
            ys = [float(v) for v in values if v is not None]
            self.query_one(widget_id, MetricChart).set_series(
                title,
                [ChartSeries(title, xs, ys, "line", color)],
                last_steps=zoom,
                markers=[float(s) for s in series.resume_steps],
            )

    def _fill_config_and_lineage(self, snapshot: RunSnapshot) -> None:
        self.query_one("#run-config", Static).update(Text(snapshot.config_text))
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        for key in sorted(snapshot.lineage):
            value = snapshot.lineage[key]
            shown = json.dumps(value) if isinstance(value, dict | list) else str(value)
            table.add_row(key, shown)
        table.add_row("run_dir", snapshot.view.run_dir)
        self.query_one("#run-lineage", Static).update(table)

    # -- actions ---------------------------------------------------------------------------
    def action_tab(self, tab_id: str) -> None:
        self.query_one("#run-tabs", TabbedContent).active = tab_id

    def action_toggle_log(self) -> None:
        self._log_y = not self._log_y
        self._draw_curves()

    def action_zoom(self) -> None:
        self._zoom_index = (self._zoom_index + 1) % len(ZOOMS)
        self._draw_curves()
        self._draw_metrics()

    def action_ema(self) -> None:
        self._ema_index = (self._ema_index + 1) % len(EMA_WEIGHTS)
        self._draw_curves()

    def action_cancel_run(self) -> None:
        if self._tail is None:
            return
        view = self._snapshot.view if self._snapshot is not None else None
        self.cancel_run(
            self._tail.paths.root,
            view.name if view is not None else self.run_id,
            view.state if view is not None else None,
            view is not None and view.is_final,
        )

    def action_resume_run(self) -> None:
        if self._tail is not None:
            self.resume_run(self._tail.paths.root)


def _torch_memory(series: Series) -> TorchMemory | None:
    allocated = series.latest(series.mem_allocated)
    reserved = series.latest(series.mem_reserved)
    peak = series.latest(series.mem_peak)
    if allocated is None and reserved is None and peak is None:
        return None

    def as_int(value: float | None) -> int | None:
        return int(value) if value is not None and math.isfinite(value) else None

    return TorchMemory(as_int(allocated), as_int(reserved), as_int(peak))


def config_text(run_dir: Path, run: dict[str, Any]) -> str:
    """What the Config tab shows: config.yaml as written, else the config the run recorded."""
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        return config_path.read_text(encoding="utf-8", errors="replace")
    config = run.get("config") or {}
    return json.dumps(config, indent=2) if config else "(no config: imported run)"
