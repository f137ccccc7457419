"""Line charts of run metrics on textual-plotext, thinned to the widget's width.

A chart keeps the series it was given and replots them whenever its width changes, so a
10,000-step run is bucketed into what the terminal can show (min and max per column, see
`core.runs.series.minmax_buckets`) and the title says how many points are drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.align import Align
from rich.text import Text
from textual.app import RenderResult
from textual.events import Resize
from textual_plotext import PlotextPlot

from core.runs.series import ema, minmax_buckets, recent
from tui.formatting import format_count

SeriesStyle = Literal["faint", "line", "points"]

NO_DATA = "no data yet"
RESUME_LABEL = "resume"
RESUME_COLOR = "red"
# Smaller than this, plotext has no room for axes and labels; the chart shows its title.
MIN_PLOT_WIDTH = 12
MIN_PLOT_HEIGHT = 5
X_TICKS = 5
Y_TICKS = 5


@dataclass(frozen=True, slots=True)
class ChartSeries:
    """One curve. `faint` is a dim line (raw values under a smoothed one), `line` a solid
    line, `points` unconnected markers (sparse values such as validation loss). An empty
    label keeps the series out of the legend. `counted` False leaves a derived series (an
    EMA of another) out of the title's "shown n / logged N"."""

    label: str
    xs: list[float]
    ys: list[float]
    style: SeriesStyle
    color: str
    counted: bool = True


@dataclass(frozen=True, slots=True)
class _Prepared:
    series: ChartSeries
    xs: list[float]
    ys: list[float]


class MetricChart(PlotextPlot):
    """A titled chart of one or more series; `set_series` replaces what it shows."""

    DEFAULT_CSS = """
    MetricChart {
        height: 1fr;
        min-height: 8;
    }
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's name for it
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._title = ""
        self._series: list[ChartSeries] = []
        self._log_y = False
        self._last_steps: int | None = None
        self._markers: tuple[float, ...] = ()
        self._placeholder: str | None = NO_DATA
        self._plotted_width = -1
        self.shown = 0
        self.logged = 0

    def set_series(
        self,
        title: str,
        series: list[ChartSeries],
        *,
        log_y: bool = False,
        last_steps: int | None = None,
        markers: Sequence[float] = (),
    ) -> None:
        """Show `series`; `last_steps` zooms to the most recent steps, `markers` draws a
        labelled vertical line at each step where the run resumed. On a log scale values
        at or below zero cannot be drawn and are left out (still counted as logged)."""
        self._title = title
        self._series = list(series)
        self._log_y = log_y
        self._last_steps = last_steps
        self._markers = tuple(markers)
        self._replot()

    @property
    def placeholder(self) -> str | None:
        """The message shown instead of a plot ("no data yet"), or None when plotting."""
        return self._placeholder

    def on_resize(self, event: Resize) -> None:
        # Bucketing depends on the width only; a height change needs no new points.
        if event.size.width != self._plotted_width:
            self._replot()

    def render(self) -> RenderResult:
        too_small = self.size.width < MIN_PLOT_WIDTH or self.size.height < MIN_PLOT_HEIGHT
        if self._placeholder is None and not too_small:
            return super().render()
        lines = [Text(self._title, style="bold")] if self._title else []
        if self._placeholder is not None:
            lines.append(Text(self._placeholder, style="dim"))
        return Align.center(Text("\n").join(lines), vertical="middle")

    def _columns(self) -> int:
        # Braille markers draw two points per cell; one bucket (min and max) per cell keeps
        # the thinned curve as detailed as the terminal can show it.
        return max(1, self.size.width)

    def _prepare(self) -> list[_Prepared]:
        finite_ends = [x for item in self._series for x in item.xs if math.isfinite(x)]
        end = max(finite_ends) if finite_ends else None
        columns = self._columns()
        prepared: list[_Prepared] = []
        self.shown = self.logged = 0
        for item in self._series:
            xs, ys = recent(item.xs, item.ys, self._last_steps, end=end)
            logged = len(xs)
            if self._log_y:
                positive = [(x, y) for x, y in zip(xs, ys, strict=False) if y > 0]
                xs, ys = [x for x, _ in positive], [y for _, y in positive]
            bucketed = minmax_buckets(xs, ys, columns)
            if item.counted:
                self.shown += bucketed.shown
                self.logged += logged
            if bucketed.xs:
                # The log scale is drawn by hand (log10 values, labelled ticks): plotext's
                # yscale("log") rewrites its stored data on every build, and Textual renders
                # a widget many times, so the second frame takes the log of a log.
                ys = [math.log10(y) for y in bucketed.ys] if self._log_y else bucketed.ys
                prepared.append(_Prepared(item, bucketed.xs, ys))
        return prepared

    def _heading(self) -> str:
        parts = [self._title] if self._title else []
        if self._last_steps is not None:
            parts.append(f"last {format_count(self._last_steps)} steps")
        if self._log_y:
            parts.append("log scale")
        if self.shown < self.logged:
            parts.append(f"shown {format_count(self.shown)} / logged {format_count(self.logged)}")
        return "  ·  ".join(parts)

    def _replot(self) -> None:
        self._plotted_width = self.size.width
        prepared = self._prepare()
        plt = self.plt
        plt.clear_figure()
        if not prepared:
            self._placeholder = (
                "no positive values to plot on a log scale"
                if self._log_y and self.logged
                else NO_DATA
            )
            self.refresh()
            return
        self._placeholder = None
        plt.title(self._heading())
        for item in prepared:
            label = item.series.label or None
            if item.series.style == "points":
                plt.scatter(item.xs, item.ys, marker="dot", color=item.series.color, label=label)
            else:
                style = "dim" if item.series.style == "faint" else None
                plt.plot(
                    item.xs,
                    item.ys,
                    marker="braille",
                    color=item.series.color,
                    style=style,
                    label=label,
                )
        all_xs = [x for item in prepared for x in item.xs]
        all_ys = [y for item in prepared for y in item.ys]
        low_x, high_x = min(all_xs), max(all_xs)
        for step in self._markers:
            # A marker outside the drawn steps would stretch the axis to reach it.
            if low_x <= step <= high_x:
                plt.vline(step, RESUME_COLOR)
                plt.text(RESUME_LABEL, step, min(all_ys), color=RESUME_COLOR, alignment="left")
        ticks = _step_ticks(low_x, high_x)
        if ticks:
            plt.xticks(ticks, [format_count(tick) for tick in ticks])
        if self._log_y:
            y_ticks = _log_ticks(min(all_ys), max(all_ys))
            plt.yticks(y_ticks, [f"{10**tick:.3g}" for tick in y_ticks])
        self.refresh()


def _step_ticks(low: float, high: float) -> list[float]:
    """Whole-number ticks for step axes (plotext would label steps 50.5, 149.5, …)."""
    if not (low.is_integer() and high.is_integer()):
        return []
    if high - low < X_TICKS:
        return [float(step) for step in range(int(low), int(high) + 1)]
    return sorted({float(round(low + i * (high - low) / (X_TICKS - 1))) for i in range(X_TICKS)})


def _log_ticks(low: float, high: float) -> list[float]:
    """Ticks in log10 units: whole decades when the range spans two or more, else a few
    evenly spaced values (a loss between 0.3 and 0.9 would get no decade tick at all)."""
    first, last = math.ceil(low), math.floor(high)
    if last > first:
        stride = max(1, math.ceil((last - first + 1) / Y_TICKS))
        return [float(decade) for decade in range(first, last + 1, stride)]
    if high == low:
        return [low]
    return [low + i * (high - low) / (Y_TICKS - 1) for i in range(Y_TICKS)]


TRAIN_COLOR = "gray"
EMA_COLOR = "cyan+"
VAL_COLOR = "orange+"


class LossChart(MetricChart):
    """Train loss (raw, faint), its EMA (solid, weight in the legend) and validation loss."""

    def update_run(
        self,
        train_steps: Sequence[float],
        train_loss: Sequence[float],
        val_steps: Sequence[float],
        val_loss: Sequence[float],
        *,
        ema_weight: float = 0.9,
        log_y: bool = False,
        last_steps: int | None = None,
        resume_steps: Sequence[float] = (),
    ) -> None:
        steps = [float(step) for step in train_steps]
        losses = [float(loss) for loss in train_loss]
        series: list[ChartSeries] = []
        if ema_weight > 0:
            series.append(ChartSeries("train", steps, losses, "faint", TRAIN_COLOR))
            # Smoothed over the whole run before zooming, so zooming does not restart it.
            series.append(
                ChartSeries(
                    f"EMA {ema_weight:.2f}",
                    steps,
                    ema(losses, ema_weight),
                    "line",
                    EMA_COLOR,
                    counted=False,
                )
            )
        else:
            series.append(ChartSeries("train", steps, losses, "line", EMA_COLOR))
        val_xs = [float(step) for step in val_steps]
        val_ys = [float(loss) for loss in val_loss]
        # A faint unlabelled line joins the evaluations; the dots are the values.
        series.append(ChartSeries("", val_xs, val_ys, "faint", VAL_COLOR, counted=False))
        series.append(ChartSeries("val", val_xs, val_ys, "points", VAL_COLOR))
        self.set_series("loss", series, log_y=log_y, last_steps=last_steps, markers=resume_steps)
