"""Test data and helpers for the dashboard tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.worker import WorkerCancelled, WorkerFailed

from store.datasets import DatasetRepository
from store.db import Store
from store.workspace import Workspace
from tui.app import FtodApp

SYSTEM = {"role": "system", "content": "You are a helpful support agent for Acme."}
CREATED_AT = datetime(2026, 1, 2, 3, 4)
SPLIT_AT = datetime(2026, 1, 2, 3, 5)


def chat(user: str, assistant: str, **metadata: str) -> str:
    row: dict[str, Any] = {
        "messages": [
            SYSTEM,
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ]
    }
    if metadata:
        row["metadata"] = metadata
    return json.dumps(row)


# Line numbers matter: the tests name them. 1 clean, 2 PII email, 3 invalid JSON, 4-5 exact
# duplicates, 6-7 near duplicates, 8-9 a contradiction, 10 a tool call, 11 clean, 12 a
# weight-0 assistant turn without a system prompt.
SUPPORT_LINES: tuple[str, ...] = (
    chat(
        "How do I reset my password?",
        "Open Settings, choose Security, then Reset password.",
        label="account",
        slice="web",
    ),
    chat(
        "My email is jane.doe@example.com, please update my invoice address.",
        "I have updated the invoice address on your account.",
        label="billing",
        slice="email",
    ),
    '{"messages": [{"role": "user", "content": "broken',
    chat(
        "Can I get a refund for order 1234?",
        "Yes, refunds are possible within 30 days of purchase.",
        label="billing",
        slice="web",
    ),
    chat(
        "Can I get a refund for order 1234?",
        "Yes, refunds are possible within 30 days of purchase.",
        label="billing",
        slice="web",
    ),
    chat(
        "Where can I download my monthly invoices as PDF files from the dashboard?",
        "Go to Billing, then Invoices, and click Download next to each month.",
        label="billing",
        slice="web",
    ),
    chat(
        "Where can I download my monthly invoices as PDF files from the dashboard page?",
        "Go to Billing, then Invoices, and click Download next to each month.",
        label="billing",
        slice="app",
    ),
    chat(
        "Does the Pro plan include phone support for all users?",
        "Yes, the Pro plan includes phone support for every user on the account.",
        label="plans",
        slice="web",
    ),
    chat(
        "Does the Pro plan include phone support for all users?",
        "No. Phone support is only part of the Enterprise plan, not Pro.",
        label="plans",
        slice="app",
    ),
    json.dumps(
        {
            "messages": [
                {"role": "user", "content": "What's the weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "18C, cloudy"},
                {"role": "assistant", "content": "It is 18°C and cloudy in Paris."},
            ],
            "metadata": {"label": "tools", "slice": "app"},
        }
    ),
    chat(
        "How do I close my account?",
        "Contact support from the Help page and we will close it within two days.",
        label="account",
        slice="email",
    ),
    json.dumps(
        {
            "messages": [
                {"role": "user", "content": "Say hi"},
                {"role": "assistant", "content": "Hi!", "weight": 0},
                {"role": "user", "content": "Again"},
                {"role": "assistant", "content": "Hello again!"},
            ],
            "metadata": {"label": "chitchat", "slice": "web"},
        }
    ),
)


def write_jsonl(path: Path, lines: tuple[str, ...] | list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def open_repository(workspace: Workspace) -> DatasetRepository:
    return DatasetRepository(Store.open(workspace))


async def settle(pilot: Pilot[None]) -> None:
    """Wait until every worker has finished and the messages they posted are handled."""
    for _ in range(20):
        # A failed worker is reported by the app (modal or notification); tests assert that.
        with contextlib.suppress(WorkerFailed, WorkerCancelled):
            await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not any(worker.is_running for worker in pilot.app.workers):
            await pilot.pause()
            if not any(worker.is_running for worker in pilot.app.workers):
                return
    raise AssertionError("workers kept running")


async def press(pilot: Pilot[None], *keys: str) -> None:
    """Press keys one at a time, settling after each (screens start workers on keys)."""
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


def showing(app: App[Any], screen: Screen[Any]) -> bool:
    """Whether `screen` is the one on top (a call, so mypy does not narrow either side)."""
    return app.screen is screen


def make_app(workspace: Workspace, initial_screen: str = "datasets") -> FtodApp:
    """The app as the CLI builds it, with animations off (pilot waits for each to end).

    The older tests start on the datasets screen; `ftod` itself opens on "home".
    """
    app = FtodApp(workspace, initial_screen=initial_screen)
    app.animation_level = "none"
    return app


def plain(renderable: RenderableType, width: int = 100) -> str:
    """What a Rich renderable reads as, without styles."""
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(renderable)
    return console.export_text(styles=False)
