"""Metric charts and the GPU panel mounted in a bare app at 80x24."""

from __future__ import annotations

import math
import random

from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.widget import Widget

from core.gpu import DeviceSample, GpuSnapshot, ProcessMemory, TorchMemory
from tests.tui.helpers import plain
from tui.widgets.charts import NO_DATA, ChartSeries, LossChart, MetricChart
from tui.widgets.gpu_panel import GpuPanel, gpu_panel_content

GIB = 1024**3
SIZE = (80, 24)


class Holder(App[None]):
    """One widget, filling the screen."""

    def __init__(self, widget: Widget) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


def holder(widget: Widget) -> Holder:
    app = Holder(widget)
    app.animation_level = "none"
    return app


def drawn(widget: Widget) -> str:
    """What the widget shows on screen now (its lines as composited), without styles."""
    region = Region(0, 0, widget.outer_size.width, widget.outer_size.height)
    return "\n".join(strip.text for strip in widget.render_lines(region))


def losses(count: int, seed: int = 3) -> tuple[list[float], list[float]]:
    generator = random.Random(seed)
    steps = [float(step) for step in range(1, count + 1)]
    return steps, [3.0 / math.sqrt(step) + generator.random() * 0.2 for step in steps]


# -- charts ----------------------------------------------------------------------------


async def test_empty_chart_says_no_data_yet() -> None:
    chart = MetricChart()
    async with holder(chart).run_test(size=SIZE) as pilot:
        assert NO_DATA in drawn(chart)
        chart.set_series("loss", [])
        await pilot.pause()
        assert chart.placeholder == NO_DATA
        assert "loss" in drawn(chart) and NO_DATA in drawn(chart)
        chart.set_series("loss", [ChartSeries("train", [], [], "line", "cyan")])
        await pilot.pause()
        assert chart.placeholder == NO_DATA


async def test_one_point_and_two_points_plot() -> None:
    chart = MetricChart()
    async with holder(chart).run_test(size=SIZE) as pilot:
        chart.set_series("lr", [ChartSeries("lr", [1.0], [2e-4], "line", "cyan")])
        await pilot.pause()
        assert chart.placeholder is None
        assert "lr" in drawn(chart)
        chart.set_series(
            "lr", [ChartSeries("lr", [1.0, 1.0], [2e-4, 2e-4], "points", "cyan")], log_y=True
        )
        await pilot.pause()
        assert chart.placeholder is None
        drawn(chart)


async def test_ten_thousand_steps_are_bucketed_to_the_width() -> None:
    chart = LossChart()
    steps, train = losses(10_000)
    val_steps = [float(step) for step in range(500, 10_001, 500)]
    val = [1.0 - step / 20_000 for step in val_steps]
    async with holder(chart).run_test(size=SIZE) as pilot:
        chart.update_run(steps, train, val_steps, val, resume_steps=[4000.0])
        await pilot.pause()
        assert chart.logged == 10_000 + len(val_steps)
        assert chart.shown <= 2 * chart.size.width + len(val_steps)
        text = drawn(chart)
        assert f"shown {chart.shown:,} / logged {chart.logged:,}" in text
        assert "EMA 0.90" in text and "val" in text and "train" in text
        assert "resume" in text
        narrow_shown = chart.shown
        await pilot.resize_terminal(160, 30)
        await pilot.pause()
        assert chart.shown > narrow_shown
        assert f"shown {chart.shown:,}" in drawn(chart)


async def test_few_points_are_not_marked_as_thinned() -> None:
    chart = LossChart()
    steps, train = losses(20)
    async with holder(chart).run_test(size=SIZE) as pilot:
        chart.update_run(steps, train, [10.0, 20.0], [0.9, 0.8], ema_weight=0.6)
        await pilot.pause()
        text = drawn(chart)
        assert "EMA 0.60" in text and "shown" not in text
        assert chart.shown == chart.logged == 22


async def test_log_scale_drops_non_positive_values() -> None:
    chart = LossChart()
    steps = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    train = [2.0, 0.0, -1.0, float("nan"), 0.5, float("inf")]
    async with holder(chart).run_test(size=SIZE) as pilot:
        chart.update_run(steps, train, [3.0], [-0.5], log_y=True)
        await pilot.pause()
        assert chart.placeholder is None
        assert chart.shown == 2 and chart.logged == 7
        text = drawn(chart)
        assert "log scale" in text and "shown 2 / logged 7" in text
        chart.update_run([1.0, 2.0], [0.0, -2.0], [], [], log_y=True)
        await pilot.pause()
        assert chart.placeholder == "no positive values to plot on a log scale"


async def test_zoom_and_markers_outside_the_window() -> None:
    chart = LossChart()
    steps, train = losses(1000)
    async with holder(chart).run_test(size=SIZE) as pilot:
        chart.update_run(
            steps, train, [500.0, 1000.0], [0.5, 0.4], last_steps=100, resume_steps=[300.0]
        )
        await pilot.pause()
        text = drawn(chart)
        assert "last 100 steps" in text
        # Resumed at step 300, outside the last 100 steps: no marker stretches the axis.
        assert "resume" not in text
        assert chart.logged == 100 + 1


async def test_a_tiny_chart_shows_its_title() -> None:
    chart = MetricChart()
    async with holder(chart).run_test(size=(8, 3)) as pilot:
        chart.set_series("loss", [ChartSeries("t", [1.0, 2.0], [1.0, 2.0], "line", "cyan")])
        await pilot.pause()
        assert "loss" in drawn(chart)


# -- the GPU panel ---------------------------------------------------------------------


def h100(used: int, **changes: object) -> DeviceSample:
    values: dict[str, object] = {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "memory_used": used,
        "memory_total": 80 * GIB,
        "utilization": 87.0,
        "memory_utilization": 41.0,
        "temperature": 64.0,
        "power_w": 312.0,
        "power_limit_w": 700.0,
    }
    values.update(changes)
    return DeviceSample(**values)  # type: ignore[arg-type]


def recorded(minutes: int = 15) -> list[GpuSnapshot]:
    """A run's system.jsonl: memory climbing to 40 GiB, one sample a second."""
    start = 1_700_000_000.0
    return [
        GpuSnapshot(
            time=start + second,
            devices=(h100(min(40 * GIB, second * GIB // 10)),),
            processes=(ProcessMemory(pid=4242, device_index=0, used=38 * GIB),),
            driver="550.54.15",
        )
        for second in range(minutes * 60)
    ]


async def test_panel_without_samples_says_so() -> None:
    panel = GpuPanel()
    async with holder(panel).run_test(size=SIZE) as pilot:
        assert "No NVIDIA GPU — no GPU samples recorded" in drawn(panel)
        panel.show([], None)
        await pilot.pause()
        assert "No NVIDIA GPU — no GPU samples recorded" in drawn(panel)


async def test_panel_without_gpu_gives_the_reason() -> None:
    panel = GpuPanel()
    missing = GpuSnapshot(time=1.0, unavailable="no NVIDIA GPU: NVML library not found")
    async with holder(panel).run_test(size=SIZE) as pilot:
        panel.show([missing], None)
        await pilot.pause()
        text = drawn(panel)
        assert "No NVIDIA GPU — NVML library not found" in text
        assert "no NVIDIA GPU: NVML" not in text
        assert "torch  N/A" in text


async def test_panel_shows_recorded_samples_in_gib() -> None:
    panel = GpuPanel()
    snapshots = recorded()
    torch_memory = TorchMemory(allocated=36 * GIB, reserved=38 * GIB, peak=39 * GIB)
    async with holder(panel).run_test(size=SIZE) as pilot:
        panel.show(snapshots, torch_memory, now=snapshots[-1].time + 3)
        await pilot.pause()
        text = drawn(panel)
        assert "GPU 0  NVIDIA H100 80GB HBM3" in text
        assert "40.0 / 80.0 GiB  50%" in text
        assert "util 87%" in text and "temp 64°C" in text and "power 312 / 700 W" in text
        assert "allocated 36.0 GiB" in text and "peak 39.0 GiB" in text
        assert "pid 4242" in text and "38.0 GiB" in text
        assert "NVIDIA driver 550.54.15  ·  sampled 3 s ago" in text
        assert "N/A" not in text
        # The timeline: 40 of 80 GiB for the last minutes reads as the half block.
        timeline = next(line for line in text.splitlines() if "10 min" in line)
        assert timeline.split("peak")[0].rstrip().endswith("▄▄▄")
        assert all(len(line) <= 80 for line in text.splitlines())


def test_timeline_ends_at_the_last_sample() -> None:
    # A run that failed after two minutes: its timeline fills the right fifth of the line.
    snapshots = recorded(minutes=2)
    text = plain(gpu_panel_content(snapshots, None, now=snapshots[-1].time + 3600), width=80)
    timeline = next(line for line in text.splitlines() if line.startswith("10 min"))
    cells = timeline.removeprefix("10 min").split("peak")[0]
    drawn_cells = cells.strip()
    assert drawn_cells and len(drawn_cells) < len(cells) / 3
    assert cells.rstrip().endswith(drawn_cells)
    assert "sampled 60 min ago" in text


async def test_panel_shows_na_for_missing_values() -> None:
    panel = GpuPanel()
    snapshot = GpuSnapshot(time=5.0, devices=(DeviceSample(index=0),), driver=None)
    async with holder(panel).run_test(size=SIZE) as pilot:
        panel.show([snapshot], TorchMemory(allocated=GIB, reserved=None, peak=None))
        await pilot.pause()
        text = drawn(panel)
        assert "GPU 0  N/A" in text
        assert "util N/A" in text and "temp N/A" in text and "power N/A" in text
        assert "reserved N/A" in text and "allocated 1.0 GiB" in text
        assert "processes  none sampled" in text


def test_gpu_lost_mid_run_keeps_the_last_device_view() -> None:
    snapshots = recorded(minutes=1)
    lost = GpuSnapshot(
        time=snapshots[-1].time + 1, unavailable="NVML could not count GPUs: GPU is lost"
    )
    text = plain(gpu_panel_content([*snapshots, lost], None), width=80)
    assert "No NVIDIA GPU — NVML could not count GPUs: GPU is lost" in text
    assert "last sample with a GPU" in text and "GPU 0" in text
