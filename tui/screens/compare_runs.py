"""Runs side by side: loss curves overlaid, and only the config and lineage that differ.

Imported runs (HF Trainer, LLaMA-Factory, OpenAI) compare like native ones: the curves
are steps against loss whatever wrote them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Footer, Header, Static

from core.runs.monitor import RunTail, RunView, Series
from core.runs.rundir import RunPaths
from core.runs.series import ema
from tui.formatting import format_metric
from tui.screens.base import FtodScreen, error_text
from tui.widgets.charts import ChartSeries, MetricChart
from tui.widgets.scroll import ScrollPane

COLORS = ("cyan", "magenta", "yellow", "green", "red", "blue", "white")
EMA_WEIGHT = 0.9


@dataclass(frozen=True, slots=True)
class ComparedRun:
    view: RunView
    series: Series
    settings: dict[str, Any]
    """Config and lineage flattened to dotted keys."""


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list):
        return {prefix: ", ".join(map(str, value))}
    return {prefix: value}


def differing_keys(runs: Iterable[dict[str, Any]]) -> list[str]:
    """Keys whose values are not all equal (a key missing from a run counts as different)."""
    settings = list(runs)
    keys = sorted({key for run in settings for key in run})
    return [key for key in keys if len({repr(run.get(key)) for run in settings}) > 1]


class CompareRunsScreen(FtodScreen):
    """Two or more runs: curves overlaid; a table of what differs between them."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "toggle_log", "Log y", id="compare.log_y", tooltip="Toggle log-scale y"),
        Binding("s", "smooth", "Raw/EMA", id="compare.smooth", tooltip="Raw loss or its EMA"),
    ]

    @dataclass
    class RunsLoaded(Message):
        runs: tuple[ComparedRun, ...]

    def __init__(self, run_ids: tuple[str, ...]) -> None:
        super().__init__()
        self.run_ids = run_ids
        self._runs: tuple[ComparedRun, ...] = ()
        self._log_y = False
        self._smooth = True

    @property
    def runs(self) -> tuple[ComparedRun, ...]:
        return self._runs

    @property
    def chart(self) -> MetricChart:
        return self.query_one("#compare-chart", MetricChart)

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(id="compare-status", classes="status-line")
        yield MetricChart(id="compare-chart")
        with ScrollPane(id="compare-table-scroll"):
            yield Static(id="compare-table")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"compare {len(self.run_ids)} runs"
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare")
    def _load(self) -> None:
        runs_dir = self.source.workspace.runs_dir
        loaded = []
        for run_id in self.run_ids:
            tail = RunTail(RunPaths(runs_dir / run_id))
            view = tail.poll()
            settings = {
                **flatten(tail.run.get("config") or {}, "config"),
                **flatten(tail.lineage, "lineage"),
                "source": tail.run.get("source"),
            }
            loaded.append(ComparedRun(view, tail.series, settings))
        self.post_message(self.RunsLoaded(tuple(loaded)))

    @on(RunsLoaded)
    def _show(self, message: RunsLoaded) -> None:
        self._runs = message.runs
        self._draw_chart()
        self._draw_table()

    def load_failed(self, error: BaseException | None) -> None:
        self.query_one("#compare-status", Static).update(
            Text.assemble(("Could not read the runs: ", "bold red"), error_text(error))
        )

    def _draw_chart(self) -> None:
        series: list[ChartSeries] = []
        for index, run in enumerate(self._runs):
            color = COLORS[index % len(COLORS)]
            steps = [float(s) for s in run.series.train_steps]
            losses = list(run.series.loss)
            shown = ema(losses, EMA_WEIGHT) if self._smooth else losses
            series.append(ChartSeries(run.view.name[:18], steps, shown, "line", color))
            if run.series.eval_steps:
                series.append(
                    ChartSeries(
                        f"{run.view.name[:12]} val",
                        [float(s) for s in run.series.eval_steps],
                        list(run.series.val_loss),
                        "points",
                        color,
                    )
                )
        title = f"loss ({'EMA 0.90' if self._smooth else 'raw'}; dots = val)"
        self.chart.set_series(title, series, log_y=self._log_y)
        status = Text()
        for index, run in enumerate(self._runs):
            color = COLORS[index % len(COLORS)]
            status.append("■ ", style=color)
            status.append(f"{run.view.name} ", style="bold")
            status.append(
                f"{run.view.state} step {run.view.step} loss {format_metric(run.view.loss)} "
                f"best val {format_metric(run.view.best_val_loss)}   "
            )
        self.query_one("#compare-status", Static).update(status)

    def _draw_table(self) -> None:
        keys = differing_keys(run.settings for run in self._runs)
        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("differs")
        for index, run in enumerate(self._runs):
            table.add_column(run.view.name[:24], style=COLORS[index % len(COLORS)])
        table.add_row("run", *(run.view.run_id for run in self._runs), style="dim")
        for key in keys:
            table.add_row(key, *(_cell(run.settings.get(key)) for run in self._runs))
        if not keys:
            table.add_row("(config and lineage are identical)", *("" for _ in self._runs))
        self.query_one("#compare-table", Static).update(table)

    def action_toggle_log(self) -> None:
        self._log_y = not self._log_y
        self._draw_chart()

    def action_smooth(self) -> None:
        self._smooth = not self._smooth
        self._draw_chart()


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    text = str(value)
    return text if len(text) <= 40 else text[:18] + "…" + text[-18:]
