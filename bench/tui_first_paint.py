"""First paint of the data desk screens on a store holding N examples (default 1M).

Builds a real workspace: N synthetic chat rows written to a file and added with
`core.datasets.add_dataset` (the same path as `ftod data add`; its time is reported too).
Then drives the dashboard headless at 80x24 and times, for each screen, key press to the
screen having painted its data. The peer, measured in the same run, is the bare DuckDB
query behind each screen (the repository call alone): `paint / query` shows what the UI
adds on top of the store.

    python bench/tui_first_paint.py --rows 1000000

The final line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.synthetic import write_rows  # noqa: E402
from core.datasets import add_dataset  # noqa: E402
from store.datasets import DatasetRepository  # noqa: E402
from store.db import Store  # noqa: E402
from store.workspace import Workspace, init_workspace  # noqa: E402


def build(rows: int, folder: Path) -> tuple[Workspace, dict[str, float]]:
    path = folder / "tickets.jsonl"
    write_rows(path, rows)
    workspace, _ = init_workspace(folder)
    repository = DatasetRepository(Store.open(workspace))
    started = time.perf_counter()
    outcome = add_dataset(workspace, repository, path, "tickets")
    added = time.perf_counter() - started
    path.unlink()
    return workspace, {
        "add_seconds": round(added, 2),
        "examples": outcome.version.rows_total,
        "findings": repository.count_findings(outcome.version.version_id),
        "store_mb": round(workspace.database_path.stat().st_size / 1e6, 1),
    }


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def query_times(workspace: Workspace) -> dict[str, float]:
    """The peer: the repository reads each screen makes, without any UI."""
    repository = DatasetRepository(Store.open(workspace))
    version = repository.version("tickets")
    version_id = version.version_id
    first = repository.findings_page(version_id, limit=200)[0]
    return {
        "datasets": timed(repository.list_datasets),
        "version": timed(
            lambda: (
                repository.version("tickets"),
                repository.finding_counts(version_id),
                repository.splits(version_id),
                repository.versions("tickets"),
            )
        ),
        "findings": timed(
            lambda: (
                repository.count_findings(version_id),
                repository.findings_page(version_id, limit=200),
            )
        ),
        "example": timed(lambda: repository.example(version_id, first.lines[0])),
    }


async def paint_times(workspace: Workspace) -> dict[str, float]:
    from tui.app import FtodApp

    seen: dict[str, float] = {}

    def hook(message: object) -> None:
        name = type(message).__qualname__.split(".")[-1]
        seen.setdefault(name, time.perf_counter())

    async def until(name: str, started: float, pilot: Any) -> float:
        while name not in seen:
            await pilot.pause(0.005)
        await pilot.pause()  # the refresh that paints the data
        return time.perf_counter() - started

    app = FtodApp(workspace)
    app.animation_level = "none"
    started = time.perf_counter()
    figures: dict[str, float] = {}
    async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
        figures["datasets"] = await until("DatasetsLoaded", started, pilot)
        started = time.perf_counter()
        await pilot.press("enter")
        figures["version"] = await until("VersionLoaded", started, pilot)
        started = time.perf_counter()
        await pilot.press("f")
        figures["findings"] = await until("FindingsPageLoaded", started, pilot)
        started = time.perf_counter()
        await pilot.press("enter")
        figures["example"] = await until("ExampleLoaded", started, pilot)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workspace, built = build(args.rows, Path(folder))
        os.chdir(folder)
        queries = query_times(workspace)
        paints = asyncio.run(paint_times(workspace))
    result: dict[str, object] = {"bench": "tui_first_paint", "terminal": "80x24", **built}
    for screen, seconds in paints.items():
        result[f"{screen}_paint_s"] = round(seconds, 3)
        result[f"{screen}_query_s"] = round(queries[screen], 3)
        result[f"{screen}_paint_over_query"] = round(seconds / max(queries[screen], 1e-6), 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
