"""Chart data: EMA smoothing, min/max bucketing and zooming to recent steps."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.runs.series import Bucketed, ema, minmax_buckets, recent

NAN = float("nan")
INF = float("inf")


def test_ema_matches_a_hand_computation() -> None:
    # weight 0.5: last = 0.5, 1.25, 2.125; debias by 1 - 0.5**n = 0.5, 0.75, 0.875.
    assert ema([1.0, 2.0, 3.0], 0.5) == pytest.approx([1.0, 1.25 / 0.75, 2.125 / 0.875])


def test_ema_first_point_is_the_first_value() -> None:
    assert ema([4.2, 1.0], 0.99)[0] == pytest.approx(4.2)


def test_ema_weight_zero_is_the_identity_and_bad_weights_raise() -> None:
    assert ema([3.0, 1.0, 2.0], 0.0) == [3.0, 1.0, 2.0]
    assert ema([], 0.9) == []
    for weight in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError):
            ema([1.0], weight)


def test_ema_skips_non_finite_values() -> None:
    smoothed = ema([1.0, NAN, 3.0, INF, -INF, 5.0], 0.5)
    assert len(smoothed) == 6
    assert math.isnan(smoothed[1])
    assert smoothed[3] == INF and smoothed[4] == -INF
    # The finite points are exactly the EMA of the finite values alone.
    assert [smoothed[0], smoothed[2], smoothed[5]] == pytest.approx(ema([1.0, 3.0, 5.0], 0.5))


def noisy(count: int, seed: int = 1) -> tuple[list[float], list[float]]:
    generator = random.Random(seed)
    xs = [float(step) for step in range(1, count + 1)]
    ys = [2.0 / math.sqrt(step) + generator.random() * 0.1 for step in range(1, count + 1)]
    return xs, ys


def test_buckets_keep_the_global_min_and_max() -> None:
    xs, ys = noisy(10_000)
    ys[4321] = 50.0  # a one-step spike
    ys[8765] = -3.0  # a one-step dip
    result = minmax_buckets(xs, ys, 60)
    assert 50.0 in result.ys and -3.0 in result.ys
    assert max(result.ys) == max(ys) and min(result.ys) == min(ys)
    assert result.logged == 10_000
    assert result.shown == len(result.xs) == len(result.ys) <= 120
    assert result.thinned
    assert result.xs == sorted(result.xs)
    # Every kept point is a logged one.
    assert all(ys[int(x) - 1] == y for x, y in zip(result.xs, result.ys, strict=True))


def test_few_points_come_back_whole() -> None:
    xs, ys = noisy(100)
    assert minmax_buckets(xs, ys, 50) == Bucketed(xs=xs, ys=ys, shown=100, logged=100)
    assert minmax_buckets([], [], 10) == Bucketed(xs=[], ys=[], shown=0, logged=0)
    assert minmax_buckets([5.0], [1.0], 0) == Bucketed(xs=[5.0], ys=[1.0], shown=1, logged=1)


def test_non_finite_points_are_dropped_but_counted() -> None:
    result = minmax_buckets([1.0, 2.0, 3.0, 4.0], [1.0, NAN, INF, 2.0], 10)
    assert result == Bucketed(xs=[1.0, 4.0], ys=[1.0, 2.0], shown=2, logged=4)
    assert minmax_buckets([NAN, 2.0], [1.0, 1.0], 10).xs == [2.0]


def test_unsorted_and_repeated_steps() -> None:
    # A resumed run logs some steps twice; a constant x range is a single bucket.
    result = minmax_buckets([3.0, 1.0, 2.0, 2.0], [3.0, 1.0, 2.0, 2.5], 1)
    assert result.xs == [1.0, 3.0] and result.ys == [1.0, 3.0]
    same = minmax_buckets([7.0] * 10, [float(n) for n in range(10)], 2)
    assert same.ys == [0.0, 9.0] and same.logged == 10


def test_columns_below_one_count_as_one() -> None:
    xs, ys = noisy(50)
    result = minmax_buckets(xs, ys, 0)
    assert result.shown == 2
    assert sorted(result.ys) == [min(ys), max(ys)]


finite_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=80, deadline=None)
@given(
    points=st.lists(st.tuples(finite_floats, finite_floats), max_size=300),
    columns=st.integers(min_value=1, max_value=40),
)
def test_bucketing_properties(points: list[tuple[float, float]], columns: int) -> None:
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    result = minmax_buckets(xs, ys, columns)
    assert result.logged == len(points)
    assert result.shown == len(result.xs) == len(result.ys) <= len(points)
    assert result.xs == sorted(result.xs)
    if points:
        assert max(result.ys) == max(ys) and min(result.ys) == min(ys)
    if len(points) > 2 * columns:
        assert result.shown <= 2 * columns


def test_recent_keeps_the_last_steps() -> None:
    xs, ys = noisy(100)
    zoom_xs, zoom_ys = recent(xs, ys, 10)
    assert zoom_xs == [float(step) for step in range(91, 101)]
    assert zoom_ys == ys[90:]
    assert recent(xs, ys, None) == (xs, ys)
    assert recent(xs, ys, 1000) == (xs, ys)


def test_recent_with_a_shared_end() -> None:
    # Validation every 25 steps, zoomed with the train curve's last step (110).
    val_xs = [25.0, 50.0, 75.0, 100.0]
    val_ys = [1.0, 0.9, 0.8, 0.7]
    assert recent(val_xs, val_ys, 40, end=110.0) == ([75.0, 100.0], [0.8, 0.7])
    assert recent(val_xs, val_ys, 40) == ([75.0, 100.0], [0.8, 0.7])


def test_recent_edge_cases() -> None:
    assert recent([], [], 10) == ([], [])
    assert recent([NAN], [1.0], 10) == ([], [])
    assert recent([1.0, NAN, 3.0], [1.0, 2.0, 3.0], 5) == ([1.0, 3.0], [1.0, 3.0])
    with pytest.raises(ValueError):
        recent([1.0], [1.0], 0)
