"""Decide: "fine-tune, or don't" from the workspace's own evidence.

The symptoms as a checklist (space toggles), the optional refs and answers, then ctrl+r
decides in a worker: the verdict, each symptom's route with its reason and next step, the
minimum proof with its evidence, and the assumptions it was made under. `s` stores the
decision as a named record; the stored records are listed below, newest first, and enter
on one shows it with what changed since its previous version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, SelectionList, Static
from textual.widgets.selection_list import Selection

from core.decide.decision import DecideRequest, decide_with_audit
from core.decide.decision import Repositories as DecideRepositories
from core.decide.record import changes
from core.decide.symptoms import SYMPTOMS
from core.evals.review import current_reviewer
from core.evals.service import parse_data_ref
from core.settings import load_settings
from store.decisions import DecisionRecord, DecisionToStore
from store.errors import InputError
from tui.screens.base import DataSource, FtodScreen, error_text
from tui.widgets.table import FtodTable

VERDICT_TEXT: dict[str, tuple[str, str]] = {
    "fine_tune": ("FINE-TUNE", "bold green"),
    "dont_fine_tune": ("DON'T FINE-TUNE", "bold yellow"),
    "not_yet": ("NOT YET", "bold red"),
}
STATUS_STYLE: dict[str, str] = {"pass": "green", "fail": "red", "missing": "yellow"}

# (input id, label, placeholder): the optional refs and answers of a decision.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("dataset", "training data", "NAME@V[:SPLIT] (blank: the baseline's train split)"),
    ("eval-set", "eval set", "NAME@V[:SPLIT]"),
    ("baseline", "baseline eval", "label or id (blank: the latest)"),
    ("requests", "requests / day", "a number"),
    ("stable", "stable?", "yes or no (blank: not answered)"),
)


def parse_requests(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InputError(
            f"requests per day must be a number of requests, 0 or more, not {text!r}",
            field="requests_per_day",
        )
    return value


def parse_stable(text: str) -> bool | None:
    answer = text.strip().lower()
    if not answer:
        return None
    if answer in ("y", "yes", "stable"):
        return True
    if answer in ("n", "no", "unstable"):
        return False
    raise InputError(f"stable? takes yes or no, not {text!r}", field="stable")


def evidence_line(evidence: Mapping[str, Any]) -> str:
    """One item's evidence in one line: its reason, else its plain numbers and names."""
    if evidence.get("reason"):
        return str(evidence["reason"])
    shown = [
        f"{key}={value}"
        for key, value in evidence.items()
        if isinstance(value, int | float | str | bool) and not isinstance(value, dict)
    ]
    return ", ".join(shown[:5])


def decision_view(payload: Mapping[str, Any]) -> RenderableType:
    """A decision as the screen shows it: verdict, routes, the proof, assumptions."""
    verdict = str(payload.get("verdict", ""))
    word, style = VERDICT_TEXT.get(verdict, (verdict.upper(), "bold"))
    parts: list[RenderableType] = [
        Text.assemble((f" {word} ", f"{style} reverse"), "  ", (verdict, "dim")),
        Text(str(payload.get("summary", ""))),
        Text("\nRoutes", style="bold underline"),
    ]
    next_steps = {
        str(step["symptom"]): str(step["next_step"]) for step in payload.get("route_next_steps", [])
    }
    for route in payload.get("routes", []):
        symptom = str(route["symptom"])
        parts.append(
            Text.assemble(
                (f"{symptom} → {route['route']}", "bold"), ": ", str(route.get("reason", ""))
            )
        )
        if next_steps.get(symptom):
            parts.append(Text(f"  next: {next_steps[symptom]}", style="dim"))
    parts.append(Text("\nThe minimum proof", style="bold underline"))
    for item in payload.get("checklist", []):
        status = str(item["status"])
        parts.append(
            Text.assemble(
                (f"{status:>7} ", STATUS_STYLE.get(status, "")),
                (str(item["id"]), "bold"),
                "  ",
                (evidence_line(item.get("evidence") or {}), "dim"),
            )
        )
    if payload.get("next_steps"):
        parts.append(Text("\nTo close", style="bold underline"))
        for step in payload["next_steps"]:
            parts.append(Text(f"{step['item']}: {step['command']}"))
    if payload.get("gate"):
        parts.append(Text(f"\nGate: {payload['gate'].get('verdict')}", style="bold"))
    assumptions = payload.get("assumptions") or []
    if assumptions:
        parts.append(Text("\nAssumptions", style="bold underline"))
        for assumption in assumptions:
            note = f" ({assumption['note']})" if assumption.get("note") else ""
            parts.append(
                Text(
                    f"{assumption['name']} = {assumption['value']}  [{assumption['source']}]{note}"
                )
            )
    return Group(*parts)


def record_view(record: DecisionRecord, previous: DecisionRecord | None) -> RenderableType:
    """A stored record: who and when, what changed since its previous version, the decision."""
    header = Text.assemble(
        (f"Decision {record.ref}", "bold"),
        f" by {record.reviewer}, {record.created_at:%Y-%m-%d %H:%M}",
    )
    lines: list[RenderableType] = [header]
    if previous is None:
        lines.append(Text("The first version of this decision.", style="dim"))
    else:
        found = changes(previous, record)
        lines.append(Text(f"Changed since version {previous.version}:", style="bold"))
        for change in found:
            lines.append(Text(f"  {change['field']}: {change['from']} → {change['to']}"))
        if not found:
            lines.append(Text("  nothing", style="dim"))
    lines.append(decision_view(record.payload))
    return Group(*lines)


class DecisionNameScreen(ModalScreen[str | None]):
    """Asks for the name to store the decision under; escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="decide-name.cancel", tooltip="Store nothing"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="decide-name-dialog", classes="dialog") as dialog:
            dialog.border_title = "Store the decision as"
            yield Input(placeholder="a name, e.g. support-tone", id="decide-name")
            yield Static("enter stores it (again: a new version); escape cancels", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#decide-name", Input).focus()

    @on(Input.Submitted, "#decide-name")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        name = event.value.strip()
        if name:
            self.dismiss(name)

    def action_cancel(self) -> None:
        self.dismiss(None)


class DecideScreen(FtodScreen):
    """The decision desk: symptoms and answers in, verdict and proof out, records kept."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+r",
            "decide",
            "Decide",
            id="decide.run",
            tooltip="Decide from the ticked symptoms and the workspace's evidence",
        ),
        Binding(
            "s",
            "store",
            "Store",
            id="decide.store",
            tooltip="Store the decision shown as a named record (again: a new version)",
        ),
    ]

    @dataclass
    class Decided(Message):
        """A decision made in the worker, as `Decision.as_json()` and the request it answers."""

        request: DecideRequest
        payload: dict[str, Any]

    @dataclass
    class RecordsLoaded(Message):
        """The stored decisions, newest first, each with its number of versions."""

        records: tuple[tuple[DecisionRecord, int], ...]

    @dataclass
    class RecordOpened(Message):
        record: DecisionRecord
        previous: DecisionRecord | None

    @dataclass
    class Stored(Message):
        name: str
        version: int

    def __init__(self) -> None:
        super().__init__()
        self._decided: DecideScreen.Decided | None = None
        self._records: tuple[tuple[DecisionRecord, int], ...] = ()

    # -- typed accessors -----------------------------------------------------------------
    @property
    def symptom_list(self) -> SelectionList[str]:
        return self.query_one("#decide-symptoms", SelectionList)

    @property
    def status(self) -> Static:
        return self.query_one("#decide-status", Static)

    @property
    def result(self) -> Static:
        return self.query_one("#decide-result", Static)

    @property
    def records_table(self) -> FtodTable:
        return self.query_one("#decide-records", FtodTable)

    @property
    def record_panel(self) -> Static:
        return self.query_one("#decide-record", Static)

    @property
    def decided(self) -> dict[str, Any] | None:
        """The decision last made on this screen (its JSON), or None."""
        return None if self._decided is None else self._decided.payload

    @property
    def records(self) -> tuple[tuple[DecisionRecord, int], ...]:
        return self._records

    def field(self, key: str) -> Input:
        return self.query_one(f"#decide-{key}", Input)

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(id="decide-status", classes="status-line")
        with VerticalScroll(id="decide-body"):
            yield SelectionList[str](
                *(
                    Selection(
                        Text.assemble((symptom.label, "bold"), "  ", (symptom.explanation, "dim")),
                        symptom.id,
                    )
                    for symptom in SYMPTOMS
                ),
                id="decide-symptoms",
            )
            with Vertical(id="decide-form"):
                for key, label, placeholder in FIELDS:
                    with Horizontal(classes="decide-field"):
                        yield Label(label, classes="decide-label")
                        yield Input(placeholder=placeholder, id=f"decide-{key}")
            yield Button("Decide (ctrl+r)", id="decide-run", variant="primary")
            yield Static(id="decide-result")
            yield Static(Text("Stored decisions", style="bold"), id="decide-records-title")
            yield FtodTable(id="decide-records")
            yield Static(id="decide-record")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "decide"
        self.symptom_list.border_title = "symptoms (space ticks)"
        table = self.records_table
        table.add_column("decision", key="decision")
        table.add_column("verdict", key="verdict")
        table.add_column("symptoms", key="symptoms")
        table.add_column("when", key="when")
        self.status.update(Text("Tick the symptoms you see, then ctrl+r decides.", style="dim"))
        self.symptom_list.focus()
        self._load_records(self.source)

    # -- deciding ------------------------------------------------------------------------
    def _request(self) -> DecideRequest:
        def text(key: str) -> str | None:
            value = self.field(key).value.strip()
            return value or None

        dataset, split = None, None
        if text("dataset") is not None:
            dataset, split = parse_data_ref(self.field("dataset").value)
        return DecideRequest(
            symptoms=tuple(self.symptom_list.selected),
            dataset=dataset,
            split=split,
            eval_set=text("eval-set"),
            baseline=text("baseline"),
            requests_per_day=parse_requests(self.field("requests").value),
            stable=parse_stable(self.field("stable").value),
        )

    def action_decide(self) -> None:
        if not self.symptom_list.selected:
            self.status.update(Text("Tick at least one symptom first (space).", style="bold red"))
            return
        try:
            request = self._request()
        except InputError as error:
            self.status.update(Text(error.message, style="bold red"))
            return
        self.status.update(Text("Deciding from the store…", style="dim"))
        self._decide(self.source, request)

    @on(Button.Pressed, "#decide-run")
    def _run_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_decide()

    @work(thread=True, exclusive=True, exit_on_error=False, group="decide")
    def _decide(self, source: DataSource, request: DecideRequest) -> None:
        repos = source.repos
        decision = decide_with_audit(
            DecideRepositories(repos.datasets, repos.evals, repos.prompts, repos.decisions),
            request,
            load_settings(source.workspace.root),
        )
        self.post_message(self.Decided(request, decision.as_json()))

    @on(Decided)
    def _show_decision(self, message: Decided) -> None:
        self._decided = message
        self.result.update(decision_view(message.payload))
        # The verdict is what was asked for: bring it to the top of the view.
        self.query_one("#decide-body", VerticalScroll).scroll_to_widget(
            self.result, animate=False, top=True
        )
        self.status.update(
            Text.assemble(("Decided. ", "bold"), ("s stores it as a named record.", "dim"))
        )

    def load_failed(self, error: BaseException | None) -> None:
        # Deciding, storing or reading the records: the error names the object that failed.
        self.status.update(Text.assemble(("Failed: ", "bold red"), error_text(error)))

    # -- storing -------------------------------------------------------------------------
    def action_store(self) -> None:
        if self._decided is None:
            self.status.update(Text("Decide first (ctrl+r), then s stores it.", style="bold red"))
            return
        decided = self._decided

        def stored_as(name: str | None) -> None:
            if name:
                self._store(self.source, name, decided)

        self.app.push_screen(DecisionNameScreen(), stored_as)

    @work(thread=True, exit_on_error=False, group="decide-store")
    def _store(self, source: DataSource, name: str, decided: Decided) -> None:
        payload, request = decided.payload, decided.request
        links = payload["links"]
        version = source.repos.decisions.add_decision(
            DecisionToStore(
                name=name,
                verdict=payload["verdict"],
                symptoms=list(request.symptoms),
                answers={"requests_per_day": request.requests_per_day, "stable": request.stable},
                inputs=request.as_json(),
                payload=payload,
                reviewer=current_reviewer(),
                dataset_version_id=links["dataset_version_id"],
                baseline_eval_id=links["baseline_eval_id"],
                gate_spec_hash=links["gate_spec_hash"],
                candidate_eval_id=links["candidate_eval_id"],
                run_id=links["run_id"],
            )
        )
        self.post_message(self.Stored(name, version))

    @on(Stored)
    def _stored(self, message: Stored) -> None:
        self.notify(f"Stored as decision {message.name}@{message.version}", markup=False)
        self.status.update(Text(f"Stored as decision {message.name}@{message.version}."))
        self._load_records(self.source)

    # -- the stored records --------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="decide-records")
    def _load_records(self, source: DataSource) -> None:
        rows = source.repos.decisions.list_latest()
        newest_first = sorted(rows, key=lambda row: row[0].created_at, reverse=True)
        self.post_message(self.RecordsLoaded(tuple(newest_first)))

    @on(RecordsLoaded)
    def _show_records(self, message: RecordsLoaded) -> None:
        self._records = message.records
        table = self.records_table
        table.clear()
        for record, versions in message.records:
            word, style = VERDICT_TEXT.get(record.verdict, (record.verdict, ""))
            table.add_row(
                Text(f"{record.ref} ({versions})" if versions > 1 else record.ref, style="bold"),
                Text(word, style=style),
                ", ".join(record.symptoms),
                f"{record.created_at:%Y-%m-%d %H:%M}",
                key=record.name,
            )
        if not message.records:
            self.record_panel.update(
                Text("No decisions stored yet: decide, then s stores one.", style="dim")
            )

    @on(DataTable.RowSelected, "#decide-records")
    def _open_record(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self._read_record(self.source, event.row_key.value)

    @work(thread=True, exclusive=True, exit_on_error=False, group="decide-record")
    def _read_record(self, source: DataSource, name: str) -> None:
        versions: Sequence[DecisionRecord] = source.repos.decisions.versions(name)
        previous = versions[-2] if len(versions) > 1 else None
        self.post_message(self.RecordOpened(versions[-1], previous))

    @on(RecordOpened)
    def _show_record(self, message: RecordOpened) -> None:
        self.record_panel.update(record_view(message.record, message.previous))
        self.record_panel.scroll_visible()
