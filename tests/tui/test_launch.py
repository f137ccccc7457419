"""The launch form: inline validation, the VRAM panel, saving YAML and a real launch."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.message import Message
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Static

from core.gpu import GpuSnapshot
from core.runs.config import RunConfig, load_run_config, parse_run_config
from core.runs.rundir import RunPaths, process_alive, read_status
from core.runs.vram import GIB, VramEstimate
from store.errors import InputError
from store.workspace import Workspace
from tests.tui.helpers import make_app, settle
from tui.app import FtodApp
from tui.screens.error import ErrorScreen
from tui.screens.launch import FIELDS, MIB, LaunchScreen, vram_text
from tui.screens.run_detail import RunDetailScreen

TRAINER_TIMEOUT_S = 120.0


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def no_gpu() -> GpuSnapshot:
    return GpuSnapshot(time=0.0, unavailable="no NVIDIA GPU: NVML library not found")


def tiny_config(model: Path, **train: Any) -> RunConfig:
    return parse_run_config(
        {
            "name": "tiny",
            "base_model": str(model),
            "dataset": "support@1",
            "train": {"max_steps": 2, "batch_size": 2, "max_seq_len": 128, **train},
        }
    )


def text_of(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Text) else str(content)


async def wait_until(pilot: Pilot[None], condition: Callable[[], bool], timeout: float = 5) -> None:
    """Let the app run until `condition` holds (the form checks fields after a debounce)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)
    await settle(pilot)


async def focus(pilot: Pilot[None], widget: Widget) -> None:
    """Focus moves on the next turn of the event loop; keys pressed before it go elsewhere."""
    widget.focus()
    await wait_until(pilot, lambda: pilot.app.focused is widget)


async def open_form(app: FtodApp, pilot: Pilot[None], initial: RunConfig | None) -> LaunchScreen:
    await settle(pilot)
    screen = LaunchScreen(initial=initial, vram_probe=no_gpu)
    await app.push_screen(screen)
    await settle(pilot)
    return screen


async def test_a_bad_value_shows_its_error_and_blocks_launch(
    support_workspace: Workspace, tiny_model_dir: Path
) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_form(app, pilot, tiny_config(tiny_model_dir))
        assert screen.config is not None and not screen.launch_button.disabled

        await focus(pilot, screen.input_for("train.lr"))
        await pilot.press(*"abc")  # the focused input selects its text: typing replaces it
        await wait_until(pilot, lambda: "train.lr" in screen.problems)
        assert screen.input_for("train.lr").value == "abc"
        assert text_of(screen.error_for("train.lr")) == "expected a number, got 'abc'"
        assert "train.lr: expected a number, got 'abc'" in text_of(screen.status)
        assert screen.config is None
        assert screen.launch_button.disabled
        assert screen.check_action("launch", ()) is False
        await pilot.press("ctrl+l")
        await settle(pilot)
        assert screen.launched_run_id is None and not screen.is_launching

        # Every bad field is marked at once, not only the first one.
        screen.input_for("train.batch_size").value = "0"
        screen.input_for("lora.target_modules").value = ""
        await wait_until(pilot, lambda: "train.batch_size" in screen.problems)
        assert text_of(screen.error_for("train.batch_size")) == "must be >= 1, got 0"
        assert text_of(screen.error_for("lora.target_modules")) == "required"
        assert "(+2 more)" in text_of(screen.status)

        screen.input_for("train.lr").value = "1e-4"
        screen.input_for("train.batch_size").value = "2"
        screen.input_for("lora.target_modules").value = "q_proj, v_proj"
        await wait_until(pilot, lambda: screen.config is not None)
        assert screen.config is not None
        assert screen.config.train.lr == 1e-4
        assert screen.config.lora.target_modules == ("q_proj", "v_proj")
        assert not screen.error_for("train.lr").display
        assert not screen.launch_button.disabled


async def test_errors_that_span_fields_land_on_the_field_they_name(
    support_workspace: Workspace, tiny_model_dir: Path
) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_form(app, pilot, tiny_config(tiny_model_dir))
        screen.input_for("train.early_stopping_patience").value = "3"
        screen.input_for("splits.val").value = ""
        assert screen.validate_now() is None
        message = "needs a validation split (splits.val)"
        assert text_of(screen.error_for("train.early_stopping_patience")) == message


async def test_the_form_marks_the_field_an_error_carries_not_one_its_text_names(
    support_workspace: Workspace, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_form(app, pilot, tiny_config(tiny_model_dir))
        # The schema's ranges reach the form: the error sits under the field.
        screen.input_for("train.batch_size").value = "100000"
        assert screen.validate_now() is None
        assert text_of(screen.error_for("train.batch_size")) == "must be <= 65536, got 100000"
        screen.input_for("train.batch_size").value = "2"
        assert screen.validate_now() is not None

        def parse_refusing_the_whole_form(raw: Any, **options: Any) -> RunConfig:
            # Only the whole form holds name, splits and train together (one field checked
            # alone, or the VRAM shape, never does).
            if {"name", "splits", "train"} <= set(raw):
                raise InputError("train.lr: too high for this seed", field="train.seed")
            return parse_run_config(raw, **options)

        monkeypatch.setattr("tui.screens.launch.parse_run_config", parse_refusing_the_whole_form)
        assert screen.validate_now() is None
        assert set(screen.problems) == {"train.seed"}
        assert text_of(screen.error_for("train.seed")) == "train.lr: too high for this seed"
        assert not screen.error_for("train.lr").display


async def test_a_filled_in_form_gets_a_vram_estimate(
    support_workspace: Workspace, tiny_model_dir: Path
) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_form(app, pilot, None)
        assert screen.config is None
        assert "required" in text_of(screen.error_for("base_model"))
        assert "fix the model" in text_of(screen.vram_panel)
        assert text_of(screen.dataset_hint) == "datasets: support@1"

        await focus(pilot, screen.input_for("name"))
        await pilot.press(*"tiny")
        screen.input_for("base_model").value = str(tiny_model_dir)
        await focus(pilot, screen.input_for("dataset"))
        await pilot.press(*"support@1")
        await wait_until(pilot, lambda: screen.config is not None)
        await wait_until(pilot, lambda: "total" in text_of(screen.vram_panel), timeout=60)
        panel = text_of(screen.vram_panel)
        assert "total" in panel and "no NVIDIA GPU" in panel and "activations" in panel
        assert "ftod train tiny.yaml" in text_of(screen.command_preview)
        assert "base_model: " + str(tiny_model_dir) in text_of(screen.yaml_preview)

        # Turning on gradient checkpointing estimates again.
        before = panel
        screen.checkbox_for("train.gradient_checkpointing").value = True
        await wait_until(pilot, lambda: text_of(screen.vram_panel) not in (before,), timeout=60)
        await wait_until(pilot, lambda: "total" in text_of(screen.vram_panel), timeout=60)
        assert screen.config is not None and screen.config.train.gradient_checkpointing


async def test_a_model_the_estimator_cannot_read_is_shown_in_the_panel(
    support_workspace: Workspace, tmp_path: Path
) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        initial = parse_run_config({"base_model": str(tmp_path), "dataset": "support@1"})
        screen = await open_form(app, pilot, initial)
        assert "the folder has no config.json" in text_of(screen.vram_panel)
        assert app.screen is screen  # no error modal


async def test_ctrl_s_writes_yaml_that_reads_back_equal(
    copied_workspace: Workspace, tiny_model_dir: Path
) -> None:
    app = make_app(copied_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_form(app, pilot, tiny_config(tiny_model_dir))
        assert screen.save_path_input.value == "tiny.yaml"
        screen.input_for("name").value = "first try"
        screen.select_for("train.scheduler").value = "linear"
        screen.checkbox_for("train.packing").value = False
        await wait_until(pilot, lambda: screen.save_path_input.value == "first-try.yaml")
        await pilot.press("ctrl+s")
        await settle(pilot)

        saved = copied_workspace.root.parent / "first-try.yaml"
        assert saved.is_file()
        assert screen.config is not None
        assert load_run_config(saved) == screen.config
        assert screen.config.train.scheduler == "linear" and not screen.config.train.packing
        assert not list(saved.parent.glob(".first-try.yaml.*"))  # no temporary file left

        # A path typed by hand is kept when the name changes.
        screen.save_path_input.value = "configs.yaml"
        await settle(pilot)  # each input's Changed reaches the screen from its own queue
        screen.input_for("name").value = "second"
        await settle(pilot)
        assert screen.save_path_input.value == "configs.yaml"


async def test_launch_starts_the_trainer(copied_workspace: Workspace, tiny_model_dir: Path) -> None:
    messages: list[Message] = []
    app = make_app(copied_workspace)
    paths: RunPaths | None = None
    try:
        async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
            screen = await open_form(app, pilot, tiny_config(tiny_model_dir))
            await pilot.press("ctrl+l")
            await wait_until(pilot, lambda: screen.launched_run_id is not None, timeout=60)
            run_id = screen.launched_run_id
            assert run_id is not None and run_id.endswith("-tiny")
            launched = [m for m in messages if isinstance(m, LaunchScreen.RunLaunched)]
            assert [m.run_id for m in launched] == [run_id]
            # The app takes the user from the form to the new run's live detail.
            await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), timeout=10)
            detail = app.screen
            assert isinstance(detail, RunDetailScreen) and detail.run_id == run_id

            paths = RunPaths(copied_workspace.runs_dir / run_id)
            assert paths.status_json.is_file()
            assert (paths.root / "config.yaml").is_file()

        deadline = time.monotonic() + TRAINER_TIMEOUT_S
        status = read_status(paths)
        while status is None or not status.is_final:
            assert time.monotonic() < deadline, f"trainer still {status} after the timeout"
            await asyncio.sleep(0.5)
            status = read_status(paths)
        assert status.state == "succeeded", paths.log.read_text()
        assert status.step == 2
    finally:
        if paths is not None:
            _stop_trainer(paths)


def _stop_trainer(paths: RunPaths) -> None:
    """Kill the trainer this test started if it is still running (a failed assertion)."""
    status = read_status(paths)
    if status is None or status.is_final or status.pid is None:
        return
    if process_alive(status.pid, status.pid_started):
        with contextlib.suppress(ProcessLookupError):
            os.kill(status.pid, signal.SIGKILL)


async def test_a_failing_launch_is_reported(
    copied_workspace: Workspace, tiny_model_dir: Path
) -> None:
    app = make_app(copied_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        config = parse_run_config({"base_model": str(tiny_model_dir), "dataset": "nope@1"})
        screen = await open_form(app, pilot, config)
        screen.action_launch()
        await settle(pilot)
        assert "launch failed" in text_of(screen.status)
        assert "nope" in text_of(screen.status)
        assert isinstance(app.screen, ErrorScreen)
        assert not screen.is_launching and screen.launched_run_id is None
        assert not [p for p in copied_workspace.runs_dir.iterdir() if p.name != ".gitkeep"]


def test_the_vram_panel_says_whether_it_fits() -> None:
    parts = {"weights": 2 * GIB, "lora_params": 11_272_192, "lora_weights": 45 * MIB}
    parts |= {"optimizer": 135 * MIB, "activations": GIB, "logits": 3 * GIB}
    fits = VramEstimate(
        **parts,
        overhead=GIB,
        total=7 * GIB,
        free_gpu=70 * GIB,
        gpu_total=80 * GIB,
        fits=True,
        notes=[],
    )
    text = vram_text(fits).plain
    assert "LoRA 11.3M" in text and "45 MiB" in text and "7.0 GiB" in text
    assert "free GPU 70.0 GiB of 80.0 GiB" in text
    assert "fits (63.0 GiB spare)" in text
    assert all(len(line) <= 31 for line in text.splitlines())
    short = replace(fits, free_gpu=GIB, fits=False, notes=["short by 6.0 GiB"])
    assert "does not fit" in vram_text(short).plain
    assert "· short by 6.0 GiB" in vram_text(short).plain


async def test_every_field_and_binding_is_there(support_workspace: Workspace) -> None:
    app = make_app(support_workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_form(app, pilot, None)
        paths = {field.path for field in FIELDS}
        defaults = RunConfig(base_model="", dataset="")
        for section in ("lora", "qlora", "train"):
            for key in getattr(defaults, section).__dataclass_fields__:
                assert f"{section}.{key}" in paths
        assert {"name", "base_model", "revision", "dataset", "splits.train", "splits.val"} <= paths
        for binding in LaunchScreen.BINDINGS:
            assert not isinstance(binding, tuple)
            assert binding.id is not None and binding.id.startswith("launch.")
            assert binding.tooltip
        assert screen.check_action("launch", ()) is False
