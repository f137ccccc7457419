"""The launch form: every run-config field, checked as you type, with a VRAM estimate.

Each field is checked on its own (a config holding only that field), so every bad field
shows its error at once instead of the first one parse_run_config meets; the whole config
is then parsed for what spans fields. The VRAM estimate and the launch run in thread
workers: inspecting a model imports torch and builds it on the meta device (seconds the
first time), and preparing a run exports the dataset.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.timer import Timer
from textual.widgets import Button, Checkbox, Footer, Header, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from core.runs.config import (
    ALL_LINEAR,
    ConfigField,
    RunConfig,
    parse_run_config,
    schema_sections,
)
from core.runs.config import FieldKind as ConfigKind
from core.runs.launch import prepare_run, start_trainer
from core.runs.vram import GIB, GpuProbe, VramEstimate, default_gpu_probe, estimate_for_run
from store.errors import FtodError, InputError
from tui.formatting import display_path
from tui.screens.base import DataSource, FtodScreen, error_text

VALIDATE_DELAY_S = 0.3
DEFAULT_FILE_STEM = "run"
MIB = 1024**2

FieldKind = Literal[
    "text", "optional_text", "number", "optional_number", "bool", "choice", "targets"
]

# How each kind of setting is edited: numbers in an Input, choices in a Select, flags in a
# Checkbox; an "optional" one may be left empty (null).
WIDGET_KINDS: dict[ConfigKind, FieldKind] = {
    "text": "text",
    "optional_text": "optional_text",
    "choice": "choice",
    "int": "number",
    "optional_int": "optional_number",
    "float": "number",
    "bool": "bool",
    "targets": "targets",
}


@dataclass(frozen=True, slots=True)
class FormField:
    """One run-config setting as the form shows it, made from its schema entry."""

    path: str
    label: str
    kind: FieldKind
    tooltip: str
    choices: tuple[str, ...] = ()
    placeholder: str = ""
    shapes_memory: bool = False
    """Whether a change can move the VRAM estimate."""

    @classmethod
    def of(cls, entry: ConfigField) -> FormField:
        setting = entry.setting
        return cls(
            path=entry.path,
            label=setting.label,
            kind=WIDGET_KINDS[entry.kind],
            tooltip=setting.help,
            choices=setting.choices,
            placeholder=setting.placeholder,
            shapes_memory=setting.shapes_memory,
        )

    @property
    def widget_id(self) -> str:
        return "launch-" + self.path.replace(".", "-")

    @property
    def error_id(self) -> str:
        return self.widget_id + "-error"


SECTIONS: tuple[tuple[str, tuple[FormField, ...]], ...] = tuple(
    (title, tuple(FormField.of(entry) for entry in entries)) for title, entries in schema_sections()
)

FIELDS: tuple[FormField, ...] = tuple(field for _title, fields in SECTIONS for field in fields)
FIELDS_BY_PATH: dict[str, FormField] = {field.path: field for field in FIELDS}

FieldValue = str | bool | int | float | list[str] | None


class _Missing:
    """A required field left empty (parse_run_config would quietly use its default)."""


MISSING = _Missing()


def config_value(config: RunConfig, path: str) -> Any:
    """The value of `path` in a RunConfig (splits live in train_split / val_split)."""
    if path == "splits.train":
        return config.train_split
    if path == "splits.val":
        return config.val_split
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def display_value(value: Any) -> str | bool:
    """How a config value reads in its widget."""
    if isinstance(value, bool):
        return value
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ", ".join(value)
    return str(value)


def parse_number(text: str) -> int | float | str:
    """An int, a float, or the text itself (parse_run_config then names the problem)."""
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return kind(text)
    return text


def raw_value(field: FormField, value: str | bool) -> FieldValue | _Missing:
    """What a widget holds, as the YAML value parse_run_config expects."""
    if isinstance(value, bool):
        return value
    text = value.strip()
    if field.kind in ("text", "choice"):
        return text
    if field.kind == "optional_text":
        return text or None
    if field.kind == "targets":
        if text == ALL_LINEAR:
            return text
        return [name.strip() for name in text.split(",") if name.strip()] if text else MISSING
    if not text:
        return None if field.kind == "optional_number" else MISSING
    return parse_number(text)


def put(raw: dict[str, Any], path: str, value: Any) -> None:
    *sections, key = path.split(".")
    target = raw
    for section in sections:
        target = target.setdefault(section, {})
    target[key] = value


# A field checked alone needs the two required fields filled in with something.
PLACEHOLDERS = {"base_model": "-", "dataset": "-"}


def field_problem(field: FormField, value: FieldValue | _Missing) -> str | None:
    """The error for one field's value on its own, or None."""
    if isinstance(value, _Missing):
        return f"{field.path}: required"
    raw: dict[str, Any] = dict(PLACEHOLDERS)
    put(raw, field.path, value)
    try:
        parse_run_config(raw)
    except InputError as error:
        return error.message
    return None


def problem_field(error: InputError) -> str:
    """The form field an error is about, or "" when it names none of them."""
    return error.field if error.field in FIELDS_BY_PATH else ""


def build_raw(
    values: dict[str, FieldValue | _Missing], paths: Collection[str] | None = None
) -> dict[str, Any]:
    """The YAML document the form describes (only `paths` when given)."""
    raw: dict[str, Any] = {}
    for path, value in values.items():
        if paths is not None and path not in paths:
            continue
        if not isinstance(value, _Missing):
            put(raw, path, value)
    return raw


def write_text_atomically(path: Path, text: str) -> None:
    """A reader (or a crash) never sees half a file: write a sibling, then rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def on_off(value: bool) -> str:
    return "on" if value else "off"


def format_params(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1e6:.1f}M"
    return f"{count / 1e3:.1f}K"


def format_bytes(value: int | None) -> str:
    """GiB with one decimal; MiB below 1 GiB, where 0.0 GiB would say nothing."""
    if value is None:
        return "N/A"
    if abs(value) < GIB:
        return f"{value / MIB:.0f} MiB"
    return f"{value / GIB:.1f} GiB"


def vram_text(estimate: VramEstimate) -> Text:
    """The VRAM panel: each part, the total against free memory, the verdict and notes."""
    rows = (
        ("weights", estimate.weights),
        (f"LoRA {format_params(estimate.lora_params)}", estimate.lora_weights),
        ("optimizer", estimate.optimizer),
        ("activations", estimate.activations),
        ("logits", estimate.logits),
        ("overhead", estimate.overhead),
    )
    text = Text()
    for label, value in rows:
        text.append(f"{label:<13}{format_bytes(value):>10}\n")
    text.append(f"{'total':<13}{format_bytes(estimate.total):>10}\n", style="bold")
    free = format_bytes(estimate.free_gpu)
    if estimate.gpu_total is not None:
        free += f" of {format_bytes(estimate.gpu_total)}"
    # Lined up with the rows above, in the side panel's 31 columns.
    text.append(f"{'free GPU':<9}{free:>14}\n")
    if estimate.fits is True:
        text.append("fits", style="bold green")
        if estimate.headroom is not None:
            text.append(f" ({format_bytes(estimate.headroom)} spare)")
    elif estimate.fits is False:
        text.append("does not fit", style="bold red")
    elif any(note.startswith("no NVIDIA GPU") for note in estimate.notes):
        text.append("no NVIDIA GPU", style="bold yellow")
    else:
        text.append("free memory unknown", style="bold yellow")
    for note in estimate.notes:
        text.append(f"\n· {note}", style="dim")
    return text


class LaunchScreen(FtodScreen):
    """Fill in a run config, see what it needs in GPU memory, save it as YAML, launch it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+s",
            "save",
            "Save YAML",
            id="launch.save",
            tooltip="Write the config as YAML to the path at the end of the form",
        ),
        Binding(
            "ctrl+l",
            "launch",
            "Launch",
            id="launch.launch",
            tooltip="Check the model and the data, then start the trainer in the background",
        ),
    ]

    @dataclass
    class DatasetsLoaded(Message):
        """The dataset versions offered as hints, read in a worker."""

        refs: tuple[str, ...]

    @dataclass
    class VramEstimated(Message):
        """An estimate for the shape fields as they were when it started (`key`)."""

        key: str
        estimate: VramEstimate

    @dataclass
    class RunLaunched(Message):
        """A run directory was prepared and its trainer started; bubbles to the app."""

        run_id: str

    def __init__(
        self, initial: RunConfig | None = None, *, vram_probe: GpuProbe | None = None
    ) -> None:
        super().__init__()
        self._initial = initial or RunConfig(base_model="", dataset="")
        self._vram_probe = vram_probe or default_gpu_probe
        self._config: RunConfig | None = None
        self._problems: dict[str, str] = {}
        self._validate_timer: Timer | None = None
        self._vram_key: str | None = None
        self._vram_worker: Worker[None] | None = None
        self._launching = False
        self._save_path_edited = False
        self._suggested_save_path = ""
        self._saved: tuple[Path, str] | None = None
        self.launched_run_id: str | None = None

    # -- typed accessors -----------------------------------------------------------------
    def input_for(self, path: str) -> Input:
        return self.query_one(f"#{FIELDS_BY_PATH[path].widget_id}", Input)

    def checkbox_for(self, path: str) -> Checkbox:
        return self.query_one(f"#{FIELDS_BY_PATH[path].widget_id}", Checkbox)

    def select_for(self, path: str) -> Select[str]:
        widget: Select[str] = self.query_one(f"#{FIELDS_BY_PATH[path].widget_id}", Select)
        return widget

    def error_for(self, path: str) -> Static:
        return self.query_one(f"#{FIELDS_BY_PATH[path].error_id}", Static)

    @property
    def status(self) -> Static:
        return self.query_one("#launch-status", Static)

    @property
    def vram_panel(self) -> Static:
        return self.query_one("#launch-vram", Static)

    @property
    def command_preview(self) -> Static:
        return self.query_one("#launch-command", Static)

    @property
    def yaml_preview(self) -> Static:
        return self.query_one("#launch-yaml", Static)

    @property
    def dataset_hint(self) -> Static:
        return self.query_one("#launch-dataset-hint", Static)

    @property
    def save_path_input(self) -> Input:
        return self.query_one("#launch-save-path", Input)

    @property
    def launch_button(self) -> Button:
        return self.query_one("#launch-go", Button)

    @property
    def config(self) -> RunConfig | None:
        """The config the form describes, or None while any field is wrong."""
        return self._config

    @property
    def problems(self) -> dict[str, str]:
        """Error messages by field path ("" for one that names no field)."""
        return dict(self._problems)

    @property
    def is_launching(self) -> bool:
        return self._launching

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(id="launch-status", classes="status-line")
        with Horizontal(id="launch-body"):
            with VerticalScroll(id="launch-form", can_focus=False):
                for title, fields in SECTIONS:
                    yield Label(title, classes="launch-section")
                    for field in fields:
                        yield from self._compose_field(field)
                yield Label("Save", classes="launch-section")
                with Horizontal(classes="launch-row"):
                    yield Label("YAML path", classes="launch-label")
                    yield Input(
                        self._default_save_path(),
                        id="launch-save-path",
                        compact=True,
                        tooltip="Where ctrl+s writes the config",
                    )
                yield Static(id="launch-yaml")
            with VerticalScroll(id="launch-side", can_focus=False):
                yield Static(id="launch-vram")
                yield Static(id="launch-command")
                with Horizontal(classes="launch-buttons"):
                    yield Button("Launch", variant="primary", id="launch-go", compact=True)
                    yield Button("Save", id="launch-save", compact=True)
        yield Footer()

    def _compose_field(self, field: FormField) -> Iterator[Any]:
        value = display_value(config_value(self._initial, field.path))
        with Horizontal(classes="launch-row"):
            yield Label(field.label, classes="launch-label")
            if field.kind == "bool":
                yield Checkbox(
                    on_off(bool(value)),
                    bool(value),
                    id=field.widget_id,
                    compact=True,
                    tooltip=field.tooltip,
                )
            elif field.kind == "choice":
                yield Select(
                    [(choice, choice) for choice in field.choices],
                    value=str(value),
                    allow_blank=False,
                    id=field.widget_id,
                    compact=True,
                    tooltip=field.tooltip,
                )
            else:
                yield Input(
                    str(value),
                    placeholder=field.placeholder,
                    id=field.widget_id,
                    compact=True,
                    tooltip=field.tooltip,
                )
        yield Static(id=field.error_id, classes="launch-error")
        if field.path == "dataset":
            yield Static("reading datasets…", id="launch-dataset-hint", classes="launch-hint")

    def on_mount(self) -> None:
        self.sub_title = "launch a run"
        self.vram_panel.update(Text("VRAM estimate: fill in the base model", style="dim"))
        self._load_datasets(self.source)
        self.validate_now()
        self.input_for("name").focus()

    # -- validation ----------------------------------------------------------------------
    @on(Input.Changed)
    @on(Checkbox.Changed)
    @on(Select.Changed)
    def _field_changed(self, event: Message) -> None:
        widget = getattr(event, "control", None)
        if widget is not None and widget.id == "launch-save-path":
            # Typing a path of one's own stops the name from replacing it.
            self._save_path_edited = self.save_path_input.value != self._suggested_save_path
            self._show_command()
            return
        if isinstance(widget, Checkbox):
            # Spelled out: the box's mark differs only by colour.
            widget.label = on_off(widget.value)
        if widget is not None and widget.id == FIELDS_BY_PATH["name"].widget_id:
            self._suggest_save_path()
        if self._validate_timer is not None:
            self._validate_timer.stop()
        self._validate_timer = self.set_timer(VALIDATE_DELAY_S, self.validate_now)

    def form_values(self) -> dict[str, FieldValue | _Missing]:
        values: dict[str, FieldValue | _Missing] = {}
        for field in FIELDS:
            widget = self.query_one(f"#{field.widget_id}")
            current: str | bool
            if isinstance(widget, Checkbox):
                current = widget.value
            elif isinstance(widget, Select):
                current = "" if widget.value is Select.BLANK else str(widget.value)
            else:
                assert isinstance(widget, Input)
                current = widget.value
            values[field.path] = raw_value(field, current)
        return values

    def validate_now(self) -> RunConfig | None:
        """Check every field, show the errors, and refresh the previews; the config or None."""
        if self._validate_timer is not None:
            self._validate_timer.stop()
            self._validate_timer = None
        values = self.form_values()
        problems: dict[str, str] = {}
        for field in FIELDS:
            problem = field_problem(field, values[field.path])
            if problem is not None:
                problems[field.path] = problem
        config: RunConfig | None = None
        if not problems:
            try:
                config = parse_run_config(build_raw(values))
            except InputError as error:
                problems[problem_field(error)] = error.message
        self._problems = problems
        self._config = config
        for field in FIELDS:
            message = problems.get(field.path, "")
            self._say(self.error_for(field.path), message.removeprefix(f"{field.path}: "))
        self._show_status()
        self._show_command()
        self.launch_button.disabled = config is None or self._launching
        self.refresh_bindings()
        self._maybe_estimate(values)
        return config

    @staticmethod
    def _say(widget: Static, message: str) -> None:
        """Show a message line, or hide the line when there is nothing to say."""
        widget.update(Text(message))
        widget.display = bool(message)

    def _show_status(self, message: Text | None = None) -> None:
        if message is None:
            if self._problems:
                first = next(iter(self._problems.values()))
                more = len(self._problems) - 1
                message = Text.assemble(
                    ("✗ ", "bold red"), first, (f" (+{more} more)" if more else "", "dim")
                )
            else:
                message = Text.assemble(("✓ ", "bold green"), "valid; ctrl+l launches")
        self.status.update(message)

    def _show_command(self) -> None:
        path = self.save_path_input.value.strip() or "RUN.yaml"
        command = Text.assemble(("command\n", "bold"), f"ftod train {path}")
        self.command_preview.update(command)
        if self._config is None:
            self.yaml_preview.update(Text("(the YAML appears once every field is valid)"))
        else:
            self.yaml_preview.update(Text(self._config.as_yaml().rstrip()))

    # -- save path -----------------------------------------------------------------------
    def _default_save_path(self) -> str:
        self._suggested_save_path = self._save_path_for(self._initial.name)
        return self._suggested_save_path

    def _save_path_for(self, name: str) -> str:
        """`<project>/<name>.yaml`: next to the workspace, where `ftod train` is run from."""
        stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in name.strip()).strip(".")
        folder = self.source.workspace.root.parent
        return display_path(folder / f"{stem or DEFAULT_FILE_STEM}.yaml")

    def _suggest_save_path(self) -> None:
        if self._save_path_edited:
            return
        self._suggested_save_path = self._save_path_for(self.input_for("name").value)
        with self.save_path_input.prevent(Input.Changed):
            self.save_path_input.value = self._suggested_save_path
        self._show_command()

    # -- datasets hint -------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="launch-datasets")
    def _load_datasets(self, source: DataSource) -> None:
        listing = source.repository().list_datasets()
        refs = tuple(f"{item.name}@{item.latest_version}" for item in listing)
        self.post_message(self.DatasetsLoaded(refs))

    @on(DatasetsLoaded)
    def _show_datasets(self, message: DatasetsLoaded) -> None:
        if not message.refs:
            self.dataset_hint.update("no datasets yet: ftod data add FILE --name NAME")
            return
        self.dataset_hint.update("datasets: " + ", ".join(message.refs))
        self.input_for("dataset").suggester = SuggestFromList(message.refs, case_sensitive=False)

    # -- VRAM ----------------------------------------------------------------------------
    def _maybe_estimate(self, values: dict[str, FieldValue | _Missing]) -> None:
        """Estimate again when the fields that shape memory changed and are valid."""
        shape_paths = {field.path for field in FIELDS if field.shapes_memory}
        if any(path in self._problems for path in shape_paths):
            self._vram_key = None
            self.vram_panel.update(
                Text("VRAM estimate: fix the model, LoRA and shape fields", style="dim")
            )
            return
        raw = {**build_raw(values, shape_paths), "dataset": PLACEHOLDERS["dataset"]}
        try:
            shape_config = parse_run_config(raw)
        except InputError as error:
            self._vram_key = None
            self.vram_panel.update(Text(f"VRAM estimate: {error.message}", style="dim"))
            return
        key = json.dumps(shape_config.as_json(), sort_keys=True)
        if key == self._vram_key:
            return
        self._vram_key = key
        self.vram_panel.update(Text("VRAM estimate: reading the model…", style="dim"))
        self._vram_worker = self._estimate(key, shape_config, self._vram_probe)

    @work(thread=True, exclusive=True, exit_on_error=False, group="vram")
    def _estimate(self, key: str, config: RunConfig, probe: GpuProbe) -> None:
        self.post_message(self.VramEstimated(key, estimate_for_run(config, probe=probe)))

    @on(VramEstimated)
    def _show_estimate(self, message: VramEstimated) -> None:
        if message.key != self._vram_key:
            return  # the fields changed while it ran; a newer estimate is on its way
        self.vram_panel.update(
            Text.assemble(("VRAM estimate\n", "bold"), vram_text(message.estimate))
        )

    # -- launch --------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "launch":
            return self._config is not None and not self._launching
        return super().check_action(action, parameters)

    @on(Button.Pressed, "#launch-go")
    def _launch_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_launch()

    @on(Button.Pressed, "#launch-save")
    def _save_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_save()

    def action_launch(self) -> None:
        config = self.validate_now()
        if config is None or self._launching:
            return
        self._launching = True
        self.launch_button.disabled = True
        self.refresh_bindings()
        self._show_status(Text("launching: checking the model and data…", style="bold"))
        config_path = None
        if self._saved is not None and self._saved[1] == config.as_yaml():
            config_path = self._saved[0]
        self._launch(self.source, config, config_path)

    @work(thread=True, exclusive=True, exit_on_error=False, group="launch")
    def _launch(self, source: DataSource, config: RunConfig, config_path: Path | None) -> None:
        prepared = prepare_run(
            source.workspace, source.repository(), config, config_path=config_path
        )
        start_trainer(prepared.paths)
        self.post_message(self.RunLaunched(prepared.paths.run_id))

    @on(RunLaunched)
    def _launched(self, message: RunLaunched) -> None:
        # Not stopped: the message bubbles on to the app, which decides what to show next.
        self.launched_run_id = message.run_id
        self._launching = False
        self.launch_button.disabled = self._config is None
        self.refresh_bindings()
        self._show_status(Text.assemble(("✓ launched ", "bold green"), message.run_id))
        self.notify(f"Launched {message.run_id}", markup=False)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        group = event.worker.group
        if group == "vram":
            # A model the estimator cannot read is shown in the panel, not as a modal.
            event.prevent_default()
            event.stop()
            if event.worker is self._vram_worker:
                title = error.title if isinstance(error, FtodError) else "VRAM estimate failed"
                self.vram_panel.update(Text.assemble((f"{title}\n", "bold red"), error_text(error)))
        elif group == "launch":
            # FtodScreen's handler goes on to post LoadFailed: the app shows the error too.
            self._launching = False
            self.launch_button.disabled = self._config is None
            self.refresh_bindings()
            self._show_status(Text.assemble(("✗ launch failed: ", "bold red"), error_text(error)))
        elif group == "launch-datasets":
            self.dataset_hint.update("could not read the datasets")

    # -- save ----------------------------------------------------------------------------
    def action_save(self) -> None:
        config = self.validate_now()
        if config is None:
            self.notify("Fix the fields marked in red first.", severity="warning", markup=False)
            return
        text = self.save_path_input.value.strip()
        if not text:
            self.notify("Give a path to save the YAML to.", severity="warning", markup=False)
            return
        path = Path(text).expanduser()
        yaml_text = config.as_yaml()
        try:
            write_text_atomically(path, yaml_text)
        except OSError as error:
            self.notify(
                f"Could not write {text}: {error.strerror or error}",
                title="Save failed",
                severity="error",
                markup=False,
            )
            return
        self._saved = (path.resolve(), yaml_text)
        self.notify(f"Saved {display_path(path.resolve())}", markup=False)
