"""Chart data from logged metrics: smoothing, zooming and thinning to the terminal's width.

Pure functions over plain lists, so the dashboard and any report draw the same curves.
Logged values may be NaN or infinite (a diverging run logs them on purpose); none of these
functions raises on them, and each says what it does with them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def ema(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start.

    smoothed_i = last_i / (1 - weight ** n_i) with last_i = weight * last + (1 - weight) * v_i,
    where n_i counts the finite values so far. Without the debias term the curve would start
    near 0 and climb for ~1/(1-weight) steps; with it the first point equals the first value.

    A NaN or infinite value is skipped: it is returned as is at its position (so the result
    stays aligned with the steps, and a chart drops it) and leaves the average untouched, so
    one bad step does not poison every later point. `weight` 0 returns the values unchanged.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"the EMA weight must be in [0, 1), not {weight}")
    smoothed: list[float] = []
    last = 0.0
    finite_seen = 0
    for value in values:
        number = float(value)
        if not math.isfinite(number):
            smoothed.append(number)
            continue
        last = weight * last + (1.0 - weight) * number
        finite_seen += 1
        smoothed.append(last / (1.0 - weight**finite_seen))
    return smoothed


@dataclass(frozen=True, slots=True)
class Bucketed:
    """Points to plot, with how many are drawn out of how many were logged."""

    xs: list[float]
    ys: list[float]
    shown: int
    logged: int

    @property
    def thinned(self) -> bool:
        return self.shown < self.logged


def _finite_points(xs: Sequence[float], ys: Sequence[float]) -> list[tuple[float, float]]:
    return [
        (float(x), float(y))
        for x, y in zip(xs, ys, strict=False)
        if math.isfinite(float(x)) and math.isfinite(float(y))
    ]


def minmax_buckets(xs: Sequence[float], ys: Sequence[float], columns: int) -> Bucketed:
    """At most 2 * `columns` points that keep every spike visible.

    With more finite points than that, the x range is cut into `columns` equal buckets and
    each bucket keeps its lowest and its highest point (once when they are the same point),
    in x order. Plain every-nth sampling would miss a one-step loss spike; this never does,
    and the global min and max are always kept.

    Points whose x or y is NaN or infinite are dropped from the plotted series but still
    counted in `logged`, so "shown n / logged N" tells the reader something is missing.
    Points need not come sorted; the result is sorted by x. `columns` below 1 counts as 1.
    """
    logged = min(len(xs), len(ys))
    points = sorted(_finite_points(xs, ys), key=lambda point: point[0])
    columns = max(1, columns)
    if len(points) <= 2 * columns:
        return Bucketed(
            xs=[x for x, _ in points], ys=[y for _, y in points], shown=len(points), logged=logged
        )
    first_x, last_x = points[0][0], points[-1][0]
    span = last_x - first_x
    lowest: list[int | None] = [None] * columns
    highest: list[int | None] = [None] * columns
    for position, (x, y) in enumerate(points):
        bucket = 0 if span == 0 else min(columns - 1, int((x - first_x) / span * columns))
        low = lowest[bucket]
        if low is None or y < points[low][1]:
            lowest[bucket] = position
        high = highest[bucket]
        if high is None or y > points[high][1]:
            highest[bucket] = position
    kept = sorted({position for position in lowest + highest if position is not None})
    return Bucketed(
        xs=[points[position][0] for position in kept],
        ys=[points[position][1] for position in kept],
        shown=len(kept),
        logged=logged,
    )


def recent(
    xs: Sequence[float],
    ys: Sequence[float],
    last_steps: int | None,
    *,
    end: float | None = None,
) -> tuple[list[float], list[float]]:
    """The points of the last `last_steps` steps: x > end - last_steps.

    `end` defaults to the largest finite x; pass the train curve's last step when zooming a
    sparser series (validation) so both show the same window. None keeps every point.
    """
    pairs = list(zip(xs, ys, strict=False))
    if last_steps is None:
        return [float(x) for x, _ in pairs], [float(y) for _, y in pairs]
    if last_steps < 1:
        raise ValueError(f"last_steps must be at least 1, not {last_steps}")
    if end is None:
        finite_xs = [float(x) for x, _ in pairs if math.isfinite(float(x))]
        if not finite_xs:
            return [], []
        end = max(finite_xs)
    start = end - last_steps
    kept = [(float(x), float(y)) for x, y in pairs if float(x) > start]
    return [x for x, _ in kept], [y for _, y in kept]
