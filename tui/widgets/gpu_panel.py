"""The GPU panel: what each device and the run's CUDA allocator looked like, and memory over
the last ten minutes of samples.

Pure display: it is given snapshots (live from a `GpuSampler` or read back from a run's
system.jsonl) and never talks to NVML or disk. Every value NVML could not give reads "N/A".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.bar import Bar
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from core.gpu import DeviceSample, GpuSnapshot, ProcessMemory, TorchMemory

NOT_AVAILABLE = "N/A"
NO_SAMPLES = "no GPU samples recorded"
NO_GPU_PREFIX = "no NVIDIA GPU: "
TIMELINE_SECONDS = 600.0
# A sample older than this (with `now` given) is flagged: the sampler or trainer stalled.
STALE_AFTER_SECONDS = 10.0
GIB = 1024**3
LEVELS = "▁▂▃▄▅▆▇█"


def format_gib(value: int | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value / GIB:.1f} GiB"


def _number(value: float | None, unit: str, digits: int = 0) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.{digits}f}{unit}"


def _memory_numbers(device: DeviceSample) -> str:
    if device.memory_used is None and device.memory_total is None:
        return NOT_AVAILABLE
    used = NOT_AVAILABLE if device.memory_used is None else f"{device.memory_used / GIB:.1f}"
    total = format_gib(device.memory_total)
    share = ""
    if device.memory_used is not None and device.memory_total:
        share = f"  {100 * device.memory_used / device.memory_total:.0f}%"
    return f"{used} / {total}{share}"


def _power(device: DeviceSample) -> str:
    if device.power_w is None and device.power_limit_w is None:
        return NOT_AVAILABLE
    return f"{_number(device.power_w, '')} / {_number(device.power_limit_w, ' W')}"


@dataclass(frozen=True, slots=True)
class MemoryTimeline:
    """A one-line sparkline of one device's memory used, as wide as the space it gets.

    Each cell covers an equal slice of the window and shows the highest sample in it,
    scaled to the device's total memory (a full block is a full card); a cell without a
    sample stays blank, so a run that started five minutes ago fills half the line.
    """

    points: tuple[tuple[float, int], ...]
    end: float
    scale: int
    seconds: float = TIMELINE_SECONDS
    style: str = "green"

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(1, options.max_width)
        highest: list[int | None] = [None] * width
        start = self.end - self.seconds
        for moment, used in self.points:
            if moment < start or moment > self.end:
                continue
            cell = min(width - 1, int((moment - start) / self.seconds * width))
            current = highest[cell]
            highest[cell] = used if current is None else max(current, used)
        cells = []
        for cell_used in highest:
            if cell_used is None:
                cells.append(" ")
                continue
            # Level n of 8 covers up to (n+1)/8 of the card: half a card is the half block.
            share = cell_used / self.scale if self.scale > 0 else 0.0
            level = math.ceil(share * len(LEVELS)) - 1
            cells.append(LEVELS[max(0, min(len(LEVELS) - 1, level))])
        yield Text("".join(cells), style=self.style, no_wrap=True, overflow="crop")


def _timeline(snapshots: Sequence[GpuSnapshot], index: int, end: float) -> MemoryTimeline | None:
    points: list[tuple[float, int]] = []
    total: int | None = None
    for snapshot in snapshots:
        for device in snapshot.devices:
            if device.index != index:
                continue
            if device.memory_used is not None:
                points.append((snapshot.time, device.memory_used))
            if device.memory_total:
                total = device.memory_total
    if not points:
        return None
    scale = total or max(used for _, used in points)
    return MemoryTimeline(points=tuple(points), end=end, scale=scale)


def _device_table(
    device: DeviceSample, snapshots: Sequence[GpuSnapshot], end: float
) -> RenderableType:
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column("label", no_wrap=True, width=7, style="dim")
    grid.add_column("value", ratio=1)
    grid.add_column("numbers", justify="right", no_wrap=True)
    if device.memory_used is not None and device.memory_total:
        bar: RenderableType = Bar(
            device.memory_total, 0, device.memory_used, color="green", bgcolor="grey19"
        )
    else:
        bar = Text(NOT_AVAILABLE, style="dim")
    grid.add_row("memory", bar, _memory_numbers(device))
    counters = (
        f"util {_number(device.utilization, '%')}   "
        f"mem bw {_number(device.memory_utilization, '%')}   "
        f"temp {_number(device.temperature, '°C')}"
    )
    grid.add_row("load", counters, f"power {_power(device)}")
    timeline = _timeline(snapshots, device.index, end)
    if timeline is None:
        grid.add_row("10 min", Text(NOT_AVAILABLE, style="dim"), "")
    else:
        peak = max(used for _, used in timeline.points)
        grid.add_row("10 min", timeline, f"peak {format_gib(peak)}")
    heading = Text.assemble((f"GPU {device.index}", "bold"), "  ", device.name or NOT_AVAILABLE)
    return Group(heading, grid)


def _torch_line(torch_memory: TorchMemory | None) -> Text:
    text = Text.assemble(("torch  ", "bold"))
    if torch_memory is None:
        text.append(f"{NOT_AVAILABLE} (the run reported no CUDA memory)", style="dim")
        return text
    text.append(
        f"allocated {format_gib(torch_memory.allocated)}   "
        f"reserved {format_gib(torch_memory.reserved)}   "
        f"peak {format_gib(torch_memory.peak)}"
    )
    return text


def _process_lines(processes: Iterable[ProcessMemory]) -> list[Text]:
    rows = sorted(processes, key=lambda process: (process.device_index, process.pid))
    if not rows:
        return [Text.assemble(("processes  ", "bold"), ("none sampled", "dim"))]
    lines = [Text("processes", style="bold")]
    lines.extend(
        Text(f"  pid {row.pid:<8} GPU {row.device_index}   {format_gib(row.used)}") for row in rows
    )
    return lines


def _heading(latest: GpuSnapshot, now: float | None) -> Text | None:
    parts: list[tuple[str, str]] = []
    if latest.driver:
        parts.append((f"NVIDIA driver {latest.driver}", "dim"))
    if now is not None:
        age = max(0.0, now - latest.time)
        style = "yellow" if age > STALE_AFTER_SECONDS else "dim"
        parts.append((f"sampled {_age(age)} ago", style))
    if not parts:
        return None
    text = Text()
    for position, (words, style) in enumerate(parts):
        text.append("  ·  " if position else "", style="dim")
        text.append(words, style=style)
    return text


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def _reason(latest: GpuSnapshot | None) -> str:
    if latest is None:
        return NO_SAMPLES
    # Reasons are written to be read alone ("no NVIDIA GPU: NVML library not found"); under
    # the panel's own "No NVIDIA GPU —" the prefix would say it twice.
    reason = latest.unavailable or "unknown reason"
    return reason.removeprefix(NO_GPU_PREFIX) or reason


def gpu_panel_content(
    snapshots: Sequence[GpuSnapshot],
    torch_memory: TorchMemory | None,
    *,
    now: float | None = None,
) -> RenderableType:
    """What the panel shows for `snapshots` (oldest first) and the run's allocator numbers.

    The timeline ends at the last snapshot, not at `now`: a failed run shows the minutes up
    to its failure. `now`, when given, only dates the newest sample ("sampled 3 s ago").
    """
    parts: list[RenderableType] = []
    latest = snapshots[-1] if snapshots else None
    if latest is None or not latest.available:
        parts.append(Text(f"No NVIDIA GPU — {_reason(latest)}", style="bold yellow"))
    else:
        heading = _heading(latest, now)
        if heading is not None:
            parts.append(heading)
    window = [
        snapshot
        for snapshot in snapshots
        if latest is not None and snapshot.time >= latest.time - TIMELINE_SECONDS
    ]
    # When the GPU went away mid-run, the last sample that still had one says what it did.
    shown = next((snapshot for snapshot in reversed(window) if snapshot.devices), None)
    if shown is not None and latest is not None:
        if shown is not latest:
            parts.append(Text("last sample with a GPU:", style="dim"))
        parts.extend(_device_table(device, window, latest.time) for device in shown.devices)
    parts.append(_torch_line(torch_memory))
    if shown is not None:
        parts.extend(_process_lines(shown.processes))
    return Group(*parts)


class GpuPanel(Static):
    """The GPU panel; `show` replaces what it displays."""

    DEFAULT_CSS = """
    GpuPanel {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(gpu_panel_content([], None), id=id, classes=classes)

    def show(
        self,
        snapshots: list[GpuSnapshot],
        torch_memory: TorchMemory | None,
        *,
        now: float | None = None,
    ) -> None:
        self.update(gpu_panel_content(snapshots, torch_memory, now=now))
