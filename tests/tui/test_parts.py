"""Pure parts of the dashboard, tested without running an app."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text

from store.datasets import FindingRecord, VersionRecord
from store.workspace import Workspace
from tests.tui.helpers import plain
from tui.app import FtodApp
from tui.formatting import display_path, format_count, format_lines, format_when, short_hash
from tui.screens.add_dataset import (
    AddDatasetScreen,
    AddResult,
    ProgressThrottle,
    stage_text,
    suggested_name,
)
from tui.screens.example import other_side
from tui.screens.version import counter_rows, histogram_rows, shape_stats, splits_panel
from tui.widgets.bars import bar_table
from tui.widgets.conversation import PII_STYLE, Highlight, highlights_from_spans, message_body


def finding(**changes: object) -> FindingRecord:
    values: dict[str, object] = {
        "finding_id": 1,
        "check": "pii",
        "severity": "warning",
        "lines": (2,),
        "message": "m",
        "other_path": None,
        "other_lines": (),
        "spans": (),
        "split_id": None,
    }
    values.update(changes)
    return FindingRecord(**values)  # type: ignore[arg-type]


def test_formatters() -> None:
    assert short_hash("ab" * 32) == "abababababab"
    assert format_when(datetime(2026, 1, 2, 3, 4, 59)) == "2026-01-02 03:04"
    assert format_count(1234567) == "1,234,567"
    assert format_count(3.25) == "3.2"
    assert format_lines((4, 5)) == "4, 5"
    assert format_lines((1, 2, 3, 4, 5)) == "1, 2, 3 …+2"


def test_display_path_is_relative_inside_the_current_folder(tmp_path: Path) -> None:
    assert display_path(tmp_path / "data" / "a.jsonl", cwd=tmp_path) == "data/a.jsonl"
    assert display_path("/elsewhere/a.jsonl", cwd=tmp_path) == "/elsewhere/a.jsonl"
    assert display_path(Path.home() / "x.jsonl", cwd=tmp_path) == "~/x.jsonl"


def test_message_body_highlights_pii_and_marks_tool_calls() -> None:
    text = 'Mail jane@example.com\nlookup({"q": "jane@example.com"})'
    content_length = len("Mail jane@example.com")
    second = text.rindex("jane@")
    highlights = [Highlight(0, 5, 21, "email"), Highlight(0, second, second + 16, "email")]
    body = message_body(text, content_length, highlights)
    assert body.plain == 'Mail jane@example.com\n→ call lookup({"q": "jane@example.com"})'
    marked = [body.plain[s.start : s.end] for s in body.spans if s.style == PII_STYLE]
    assert marked == ["jane@example.com", "jane@example.com"]
    # A message that is only a tool call has no content part.
    assert message_body("f(1)", 0, []).plain == "→ call f(1)"
    assert message_body("plain", None, []).plain == "plain"


def test_malformed_spans_are_skipped() -> None:
    spans = (
        {"message_index": 1, "start": 2, "end": 4, "kind": "email", "detail": "email address"},
        {"x": 1},
    )
    assert highlights_from_spans(spans) == (Highlight(1, 2, 4, "email address"),)


def test_other_side_of_each_finding_kind() -> None:
    assert other_side(finding()) is None
    pair = other_side(finding(check="near_duplicate", lines=(6, 7, 9)))
    assert pair is not None and pair.lines == (7, 9) and pair.external_path is None
    split = other_side(finding(check="leakage", other_path="split:train", other_lines=(3,)))
    assert split is not None and split.label == "split:train" and split.external_path is None
    external = other_side(finding(check="leakage", other_path="/data/eval.jsonl", other_lines=(5,)))
    assert external is not None and external.external_path == "/data/eval.jsonl"


def test_histogram_keeps_buckets_up_to_the_data_or_the_limit() -> None:
    histogram: list[dict[str, Any]] = [
        {"label": "≤64", "high": 64, "count": 3},
        {"label": "≤128", "high": 128, "count": 0},
        {"label": "≤256", "high": 256, "count": 1},
        {"label": "≤512", "high": 512, "count": 0},
        {"label": "≤1024", "high": 1024, "count": 0},
        {"label": ">1024", "high": None, "count": 0},
    ]
    assert histogram_rows(histogram, 512) == [("≤64", 3), ("≤128", 0), ("≤256", 1), ("≤512", 0)]
    assert histogram_rows(histogram, 100) == [("≤64", 3), ("≤128", 0), ("≤256", 1)]
    assert histogram_rows(histogram, 5000)[-1] == (">1024", 0)


def test_bars_and_counters_render_at_80_columns() -> None:
    rows = counter_rows({"b": 2, "a": 2, "c": 5})
    assert rows == [("c", 5), ("a", 2), ("b", 2)]
    lines = plain(bar_table(rows), width=80).splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert lines[0].startswith("c ") and lines[0].rstrip().endswith(" 5 55.6%")
    assert "nothing to show" in plain(bar_table([]))


def test_shape_and_splits_text() -> None:
    summary = {
        "parsed_rows": 4,
        "turns": {"min": 2, "p50": 3, "mean": 3.5, "max": 6},
        "missing_system_share": 0.25,
        "rows_with_tool_calls": 1,
    }
    text = plain(shape_stats(summary))
    assert "25.0% of rows (1 of 4)" in text and "1 row (25.0%)" in text
    version = VersionRecord(
        1, "d", 2, "0" * 64, "/x", "jsonl", 4, 4, 0, 0, "exact", 2048, {}, datetime(2026, 1, 1)
    )
    assert "ftod data split d@2" in plain(splits_panel(version, []))


def test_progress_throttle_posts_stage_changes_and_at_most_ten_a_second() -> None:
    now = [0.0]
    posted: list[tuple[str, int, int | None]] = []
    throttle = ProgressThrottle(lambda *a: posted.append(a), clock=lambda: now[0])
    for step in range(100):  # 1 s of updates every 10 ms
        now[0] = step / 100
        throttle("reading", step, 100)
    throttle("near-duplicates", 0, 10)  # a new stage always shows
    assert len(posted) == 11
    assert posted[-1] == ("near-duplicates", 0, 10)


def test_progress_messages_replace_each_other() -> None:
    first = AddDatasetScreen.Progress("reading", 1, 10)
    second = AddDatasetScreen.Progress("reading", 2, 10)
    assert first.can_replace(second)
    assert not first.can_replace(AddDatasetScreen.DatasetAdded(AddResult("d", 1, 1, True, 1, 0, 0)))


def test_add_helpers() -> None:
    assert suggested_name("data/My Tickets v2.jsonl") == "My-Tickets-v2"
    assert stage_text("reading", 1_500_000, 3_000_000) == "reading 1.5 of 3.0 MB"
    assert stage_text("near-duplicates", 5, 10) == "near-duplicates: 5 of 10"
    assert stage_text("storing", 0, None) == "storing…"
    created = AddResult("faq", 3, 7, True, 1200, 2, 5)
    assert created.summary == "Added faq@3: 1,200 rows, 2 errors, 5 warnings"
    assert AddResult("faq", 2, 6, False, 10, 0, 0).summary == "No new version: identical to faq@2"


def test_the_app_opens_nothing_until_it_runs(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / ".ftod")
    FtodApp(workspace)
    assert not workspace.root.exists()
    with pytest.raises(ValueError, match="initial_screen 'nope'"):
        FtodApp(workspace, initial_screen="nope")


def test_text_cells_are_rich_text() -> None:
    # Cells built from user data are Text, so '[' in a message is never read as markup.
    assert isinstance(message_body("[bold]x", None, []), Text)
