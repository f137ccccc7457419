"""The "Add dataset" modal: a path and a name, checked inline, added in a thread worker.

The scan reports progress from its own thread many times a second; `ProgressThrottle`
drops updates closer than 0.1 s apart within a stage, and `Progress.can_replace` lets the
message queue merge those that still pile up, so the bar never floods the UI thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ProgressBar, Static
from textual.worker import Worker

from core.datasets import AddOutcome, add_dataset, validate_name
from store.errors import FtodError
from tui.screens.base import DataSource, data_source, error_text, report_worker_failure

PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True, slots=True)
class AddResult:
    """What the datasets screen needs to announce an added (or already stored) version."""

    name: str
    version: int
    version_id: int
    created: bool
    rows: int
    errors: int
    warnings: int

    @classmethod
    def from_outcome(cls, outcome: AddOutcome) -> AddResult:
        version = outcome.version
        return cls(
            name=version.dataset,
            version=version.version,
            version_id=version.version_id,
            created=outcome.created,
            rows=version.rows_total,
            errors=version.errors,
            warnings=version.warnings,
        )

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def summary(self) -> str:
        if not self.created:
            return f"No new version: identical to {self.ref}"
        return (
            f"Added {self.ref}: {self.rows:,} rows, {self.errors:,} errors, "
            f"{self.warnings:,} warnings"
        )


class ProgressThrottle:
    """A progress callback for core.scan that posts at most one update per interval per stage."""

    def __init__(
        self,
        post: Callable[[str, int, int | None], None],
        interval_s: float = PROGRESS_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._post = post
        self._interval_s = interval_s
        self._clock = clock
        self._stage: str | None = None
        self._last = float("-inf")

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = self._clock()
        if stage == self._stage and now - self._last < self._interval_s:
            return
        self._stage = stage
        self._last = now
        self._post(stage, done, total)


def suggested_name(path: str) -> str:
    """A dataset name from a file name: its stem with anything unusual replaced by '-'."""
    stem = Path(path.strip()).name.split(".", 1)[0]
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in stem).strip("-._")
    return cleaned[:100]


def stage_text(stage: str, done: int, total: int | None) -> str:
    if stage == "reading" and total:
        return f"reading {done / 1e6:,.1f} of {total / 1e6:,.1f} MB"
    if total:
        return f"{stage}: {done:,} of {total:,}"
    if done:
        return f"{stage}: {done:,}"
    return f"{stage}…"


class AddDatasetScreen(ModalScreen[AddResult | None]):
    """Path + name form; dismisses with an AddResult once the version is stored."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="add.cancel", tooltip="Close without adding"),
    ]

    @dataclass
    class Progress(Message):
        """Where the scan is; newer updates replace queued ones."""

        stage: str
        done: int
        total: int | None

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, AddDatasetScreen.Progress)

    @dataclass
    class DatasetAdded(Message):
        result: AddResult

    def __init__(self) -> None:
        super().__init__()
        self._adding = False
        self._name_edited = False

    # -- typed accessors -----------------------------------------------------------------
    @property
    def path_input(self) -> Input:
        return self.query_one("#add-path", Input)

    @property
    def name_input(self) -> Input:
        return self.query_one("#add-name", Input)

    @property
    def path_error(self) -> Static:
        return self.query_one("#add-path-error", Static)

    @property
    def name_error(self) -> Static:
        return self.query_one("#add-name-error", Static)

    @property
    def form_error(self) -> Static:
        return self.query_one("#add-error", Static)

    @property
    def stage(self) -> Static:
        return self.query_one("#add-stage", Static)

    @property
    def progress_bar(self) -> ProgressBar:
        return self.query_one("#add-progress", ProgressBar)

    @property
    def add_button(self) -> Button:
        return self.query_one("#add-ok", Button)

    @property
    def is_adding(self) -> bool:
        return self._adding

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Vertical(id="add-dialog", classes="dialog") as dialog:
            dialog.border_title = "Add dataset"
            yield Label("File (.jsonl or .parquet)")
            yield Input(placeholder="path/to/train.jsonl", id="add-path")
            yield Static(id="add-path-error", classes="field-error")
            yield Label("Name")
            yield Input(placeholder="letters, digits, . _ -", id="add-name")
            yield Static(id="add-name-error", classes="field-error")
            yield Static(id="add-stage", classes="stage")
            yield ProgressBar(total=None, show_eta=False, id="add-progress")
            yield Static(id="add-error", classes="field-error")
            with Horizontal(classes="buttons"):
                yield Button("Add", variant="primary", id="add-ok")
                yield Button("Cancel", id="add-cancel")

    def on_mount(self) -> None:
        self.progress_bar.display = False
        for line in (self.path_error, self.name_error, self.stage, self.form_error):
            self._say(line, "")
        self.path_input.focus()

    # -- form ----------------------------------------------------------------------------
    @on(Input.Changed, "#add-path")
    def _path_changed(self, event: Input.Changed) -> None:
        self._say(self.path_error, "")
        if not self._name_edited:
            with self.name_input.prevent(Input.Changed):
                self.name_input.value = suggested_name(event.value)

    @on(Input.Changed, "#add-name")
    def _name_changed(self) -> None:
        self._name_edited = True
        self._say(self.name_error, "")

    @on(Input.Submitted, "#add-path")
    def _path_submitted(self) -> None:
        self.name_input.focus()

    @on(Input.Submitted, "#add-name")
    @on(Button.Pressed, "#add-ok")
    def _submit(self, event: Message) -> None:
        event.stop()
        self.submit()

    @on(Button.Pressed, "#add-cancel")
    def _cancel_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_cancel()

    def validate_form(self) -> tuple[Path, str] | None:
        """Inline messages for an unusable path or name; the values when both are fine."""
        raw_path = self.path_input.value.strip()
        name = self.name_input.value.strip()
        path_problem = name_problem = ""
        path = Path(raw_path).expanduser()
        if not raw_path:
            path_problem = "Give the path of a .jsonl or .parquet file."
        elif not path.exists():
            path_problem = f"No such file: {raw_path}"
        elif path.is_dir():
            path_problem = f"{raw_path} is a folder; pick a file in it."
        if not name:
            name_problem = "Give the dataset a name."
        else:
            try:
                validate_name(name)
            except FtodError as error:
                name_problem = error.message
        self._say(self.path_error, path_problem)
        self._say(self.name_error, name_problem)
        if path_problem or name_problem:
            return None
        return path, name

    def submit(self) -> None:
        if self._adding:
            return
        values = self.validate_form()
        if values is None:
            return
        path, name = values
        self._set_adding(True)
        self._say(self.form_error, "")
        self._say(self.stage, "starting…")
        self._add(data_source(self.app), path, name)

    @staticmethod
    def _say(widget: Static, message: str) -> None:
        """Show a message line, or hide the line when there is nothing to say."""
        widget.update(Text(message))
        widget.display = bool(message)

    def _set_adding(self, adding: bool) -> None:
        self._adding = adding
        self.path_input.disabled = adding
        self.name_input.disabled = adding
        self.add_button.disabled = adding
        self.progress_bar.display = adding
        if adding:
            self.progress_bar.update(total=None, progress=0)

    # -- the worker ----------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="add-dataset")
    def _add(self, source: DataSource, path: Path, name: str) -> None:
        def post_progress(stage: str, done: int, total: int | None) -> None:
            self.post_message(self.Progress(stage, done, total))

        outcome = add_dataset(
            source.workspace,
            source.repository(),
            path,
            name,
            progress=ProgressThrottle(post_progress),
        )
        self.post_message(self.DatasetAdded(AddResult.from_outcome(outcome)))

    @on(Progress)
    def _show_progress(self, message: Progress) -> None:
        self._say(self.stage, stage_text(message.stage, message.done, message.total))
        if message.total:
            self.progress_bar.update(total=message.total, progress=message.done)
        else:
            self.progress_bar.update(total=None)

    @on(DatasetAdded)
    def _added(self, message: DatasetAdded) -> None:
        self._adding = False
        self.dismiss(message.result)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        # This form shows its own errors (the app-wide modal is not needed).
        report_worker_failure(self, event, self._show_failure, lambda group: True)

    def _show_failure(self, error: BaseException | None) -> None:
        self._set_adding(False)
        self._say(self.stage, "")
        title = error.title if isinstance(error, FtodError) else "Could not add the file"
        self._say(self.form_error, f"{title}: {error_text(error)}")
        self.path_input.focus()

    def action_cancel(self) -> None:
        if self._adding:
            self.notify(
                "The file is still being added; wait for it to finish.",
                severity="warning",
                markup=False,
            )
            return
        self.dismiss(None)
