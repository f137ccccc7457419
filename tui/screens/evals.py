"""Every eval of the workspace, and the way into the review room.

A worker reads the list of evals and posts it, then every eval's scorer means and gate
results in one more connection, and posts those: the table shows at once and its scores and
gate columns fill in right after. All reads go through `EvalRepository`.

Enter opens the review room with the highlighted eval as candidate against a baseline chosen
by core's `choose_review_pair`, the rule `ftod review` follows too: the eval marked with `b`,
else the baseline of the candidate's latest gate result, else the latest earlier eval of the
same dataset version. If the candidate's gate results are not read yet, they are read first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import get_current_worker

from core.evals.review import NoPairChoice, PairChoice, choose_review_pair
from store.evals import EvalRecord, EvalRepository, GateResultRecord, ScorerSummary
from tui.formatting import display_path, format_count, format_when
from tui.screens.base import DataSource, FilteredListScreen, OpenReviewRoom
from tui.widgets.search import SearchBar
from tui.widgets.table import FtodTable

WIDE_WIDTH = 110
"""From this width the table also shows the model and the created time (else the panel does)."""
NARROW_SCORES = 22
WIDE_SCORES = 34
MODEL_CHARS = 24
PENDING = Text("…", style="dim")

EMPTY_TEXT = Text.assemble(
    ("No evals yet: ", "bold"),
    "create one with ",
    ("ftod eval import --data NAME@V --outputs FILE --label LABEL", "bold green"),
    " or ",
    ("ftod eval run …", "bold green"),
)

Columns = tuple[tuple[str | Text, str], ...]
NARROW_COLUMNS: Columns = (
    ("", "mark"),
    ("label", "label"),
    (Text("id", justify="right"), "id"),
    ("data", "data"),
    (Text("rows", justify="right"), "rows"),
    ("scores", "scores"),
    ("gate", "gate"),
)
WIDE_COLUMNS: Columns = (
    *NARROW_COLUMNS[:4],
    ("model", "model"),
    *NARROW_COLUMNS[4:],
    ("created", "created"),
)


@dataclass(frozen=True, slots=True)
class EvalDetails:
    """What is read per eval after the list: its scorer means and gate results."""

    eval_id: int
    summaries: tuple[ScorerSummary, ...]
    gates: tuple[GateResultRecord, ...]
    """Gate results with this eval as the candidate, oldest first."""


@dataclass(frozen=True, slots=True)
class EvalEntry:
    """One eval of the table; `details` is None until its worker has read them."""

    record: EvalRecord
    details: EvalDetails | None = None

    @property
    def eval_id(self) -> int:
        return self.record.eval_id

    @property
    def summaries(self) -> tuple[ScorerSummary, ...]:
        if self.details is None:
            return ()
        return in_named_order(self.record, self.details.summaries)

    @property
    def gates(self) -> tuple[GateResultRecord, ...]:
        return self.details.gates if self.details is not None else ()

    @property
    def latest_gate(self) -> GateResultRecord | None:
        gates = self.gates
        return gates[-1] if gates else None


@dataclass(frozen=True, slots=True)
class ReviewPair:
    """A baseline and candidate the review room can open, and why that baseline."""

    baseline: EvalRecord
    candidate: EvalRecord
    reason: str


@dataclass(frozen=True, slots=True)
class NoPair:
    """Why no review pair could be chosen, as the sentence a person reads."""

    message: str


def read_details(evals: EvalRepository, eval_id: int) -> EvalDetails:
    """One eval's scorer means and its gate results as candidate (two reads)."""
    return EvalDetails(
        eval_id=eval_id,
        summaries=tuple(evals.score_summaries(eval_id)),
        gates=tuple(evals.gate_results(eval_id)),
    )


def marked_decides(entries: Sequence[EvalEntry], marked_id: int | None) -> bool:
    """Whether the `b` mark alone decides the pair (no gate results needed)."""
    return marked_id is not None and any(entry.eval_id == marked_id for entry in entries)


def choose_pair(
    entries: Sequence[EvalEntry], candidate_id: int, marked_id: int | None = None
) -> ReviewPair | NoPair:
    """The pair enter opens for `candidate_id`, by core's `choose_review_pair` (the rule
    `ftod review` uses too), worded for this screen. A candidate whose details are not read
    yet counts as having no gate result.
    """
    entry = next((entry for entry in entries if entry.eval_id == candidate_id), None)
    choice = choose_review_pair(
        (entry.record for entry in entries),
        candidate_id,
        entry.gates if entry is not None else (),
        marked_id,
    )
    if isinstance(choice, PairChoice):
        return ReviewPair(choice.baseline, choice.candidate, _basis_text(choice))
    return NoPair(_no_pair_text(choice, candidate_id))


def _basis_text(choice: PairChoice) -> str:
    if choice.basis == "chosen":
        return "marked with b"
    if choice.basis == "gate":
        return f"the baseline of its gate #{choice.gate_id}"
    candidate = choice.candidate
    return f"the latest earlier eval of {candidate.dataset}@{candidate.version}"


def _no_pair_text(choice: NoPairChoice, candidate_id: int) -> str:
    candidate, chosen = choice.candidate, choice.chosen
    if candidate is None:
        return f"No eval with id {candidate_id}; press r to read the list again."
    if choice.reason == "chosen_is_candidate":
        return (
            f"{candidate.label} is the baseline you marked with b; highlight another eval "
            "as the candidate, or press b on it again to unmark it."
        )
    if choice.reason == "chosen_other_version" and chosen is not None:
        return (
            f"The marked baseline {chosen.label} is on {chosen.data_ref} and "
            f"{candidate.label} on {candidate.data_ref}; the review room compares evals "
            "of one dataset version."
        )
    return (
        f"No baseline for {candidate.label}: no gate result and no earlier eval of "
        f"{candidate.dataset}@{candidate.version}. Mark a baseline with b, then press enter "
        "on the candidate."
    )


def matches(entry: EvalEntry, pattern: str) -> bool:
    """Whether the filter `pattern` (lower case) occurs in the label, data, model, adapter
    or prompt of the eval."""
    record = entry.record
    fields = (record.label, record.data_ref, record.model, record.adapter, record.prompt)
    return any(pattern in field.lower() for field in fields if field)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_mean(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.3f}"


def in_named_order(
    record: EvalRecord, summaries: Sequence[ScorerSummary]
) -> tuple[ScorerSummary, ...]:
    """The summaries in the order the eval named its scorers (the first is the one that
    matters most to whoever named them), others after."""
    order = {name: index for index, name in enumerate(record.scorer_names)}
    return tuple(sorted(summaries, key=lambda s: (order.get(s.scorer, len(order)), s.scorer)))


def scores_text(summaries: Sequence[ScorerSummary]) -> str:
    """'exact 0.625 chrf 0.412': each stored scorer with its mean."""
    return "  ".join(f"{summary.scorer} {format_mean(summary.mean)}" for summary in summaries)


def gate_cell(gate: GateResultRecord | None) -> Text:
    if gate is None:
        return Text("—", style="dim")
    return Text("PASS", style="bold green") if gate.passed else Text("FAIL", style="bold red")


def model_text(record: EvalRecord) -> str:
    """'MODEL + ADAPTER · PROMPT' as recorded, or '' when none was."""
    parts = [record.model or ""]
    if record.adapter:
        parts.append(f"+ {record.adapter}")
    text = " ".join(part for part in parts if part)
    if record.prompt:
        text = f"{text} · {record.prompt}" if text else f"prompt {record.prompt}"
    return text


class EvalsTable(FtodTable):
    """The evals table: enter reviews the highlighted eval (the footer says so)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter",
            "select_cursor",
            "Review",
            id="evals.review",
            tooltip="Open the review room: the highlighted eval against its baseline",
        ),
    ]


class EvalsScreen(FilteredListScreen):
    """A table of evals; `b` marks a baseline, enter reviews the highlighted eval against it."""

    ITEMS = "evals"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "b",
            "mark_baseline",
            "Baseline",
            id="evals.baseline",
            tooltip="Mark or unmark the highlighted eval as the baseline enter reviews against",
        ),
        Binding(
            "slash",
            "search",
            "Filter",
            id="evals.search",
            tooltip="Filter evals by label, dataset, model, adapter or prompt",
        ),
        Binding("r", "reload", "Reload", id="evals.reload", tooltip="Read the list again"),
    ]

    @dataclass
    class EvalsLoaded(Message):
        """Every eval of the workspace, oldest first, read in a worker."""

        records: tuple[EvalRecord, ...]

    @dataclass
    class EvalDetailsLoaded(Message):
        """Scorer means and gate results of some evals, read in a worker; `review` is the
        candidate whose review room waits for them, if any."""

        details: tuple[EvalDetails, ...]
        review: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self._entries: tuple[EvalEntry, ...] = ()
        self._shown: tuple[EvalEntry, ...] = ()
        self._marked: int | None = None
        self._pending_review: int | None = None
        self._loaded = False
        self._wide: bool | None = None
        self._placed = False

    # -- typed accessors -----------------------------------------------------------------
    @property
    def table(self) -> EvalsTable:
        return self.query_one("#evals-table", EvalsTable)

    @property
    def empty_panel(self) -> Static:
        return self.query_one("#evals-empty", Static)

    @property
    def status(self) -> Static:
        return self.query_one("#evals-status", Static)

    @property
    def detail(self) -> Static:
        return self.query_one("#evals-detail", Static)

    @property
    def search_bar(self) -> SearchBar:
        return self.query_one("#evals-search", SearchBar)

    @property
    def entries(self) -> tuple[EvalEntry, ...]:
        """The evals last loaded, oldest first."""
        return self._entries

    @property
    def marked(self) -> EvalRecord | None:
        """The eval marked with `b` as the baseline, if any."""
        return next((e.record for e in self._entries if e.eval_id == self._marked), None)

    @property
    def wide(self) -> bool:
        return bool(self._wide)

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(id="evals-status", classes="status-line")
        yield EvalsTable(id="evals-table")
        yield Static(id="evals-detail", classes="detail-panel")
        yield Static(EMPTY_TEXT, id="evals-empty", classes="empty-panel")
        yield SearchBar(
            "filter evals by label, dataset, model, adapter or prompt", id="evals-search"
        )
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "evals"
        self._fit(self.size.width)
        self.table.loading = True
        self.empty_panel.display = False

    def on_resize(self, event: events.Resize) -> None:
        if self._fit(event.size.width) and self._loaded:
            self._fill_table()

    def _fit(self, width: int) -> bool:
        """Lay the columns out for `width`; True when they changed."""
        wide = width >= WIDE_WIDTH
        if wide == self._wide:
            return False
        self._wide = wide
        self.table.clear(columns=True)
        for label, key in WIDE_COLUMNS if wide else NARROW_COLUMNS:
            self.table.add_column(label, key=key)
        return True

    def on_screen_suspend(self) -> None:
        # The review room reads the same store: stop filling in details meanwhile (resuming
        # reads the list again anyway).
        self.workers.cancel_group(self, "evals")

    # -- loading -------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="evals")
    def _load(self, source: DataSource) -> None:
        evals = source.repos.evals
        records = tuple(evals.list_evals())
        self.post_message(self.EvalsLoaded(records))
        if get_current_worker().is_cancelled:
            return
        summaries, gates = evals.summaries_and_gates()
        self.post_message(
            self.EvalDetailsLoaded(
                tuple(
                    EvalDetails(
                        eval_id=record.eval_id,
                        summaries=tuple(summaries.get(record.eval_id, ())),
                        gates=tuple(gates.get(record.eval_id, ())),
                    )
                    for record in records
                )
            )
        )

    @work(thread=True, exit_on_error=False, group="evals-review")
    def _read_for_review(self, source: DataSource, eval_id: int) -> None:
        evals = source.repos.evals
        self.post_message(self.EvalDetailsLoaded((read_details(evals, eval_id),), eval_id))

    @on(EvalsLoaded)
    def _show_evals(self, message: EvalsLoaded) -> None:
        # A reload keeps what was read before until the fresh details arrive (no flicker).
        known = {entry.eval_id: entry.details for entry in self._entries}
        self._entries = tuple(
            EvalEntry(record, known.get(record.eval_id)) for record in message.records
        )
        if self._marked not in {entry.eval_id for entry in self._entries}:
            self._marked = None
        self._loaded = True
        self.table.loading = False
        self._fill_table()
        if not self.search_bar.has_focus:
            self.table.focus()
            self.refresh_bindings()

    @on(EvalDetailsLoaded)
    def _show_details(self, message: EvalDetailsLoaded) -> None:
        read = {details.eval_id: details for details in message.details}

        def merged(entries: tuple[EvalEntry, ...]) -> tuple[EvalEntry, ...]:
            return tuple(
                replace(entry, details=read[entry.eval_id]) if entry.eval_id in read else entry
                for entry in entries
            )

        self._entries = merged(self._entries)
        self._shown = merged(self._shown)
        table = self.table
        for entry in self._shown:
            if entry.eval_id in read:
                key = str(entry.eval_id)
                table.update_cell(key, "scores", self._scores_cell(entry), update_width=True)
                table.update_cell(key, "gate", self._gate_cell(entry), update_width=True)
        self._show_detail()
        if message.review is not None and message.review == self._pending_review:
            self._pending_review = None
            if self.app.screen is self:  # not if the user went elsewhere meanwhile
                self._review(message.review)

    def _fill_table(self) -> None:
        table = self.table
        selected = self.selected_eval_id()
        pattern = self.search_bar.value.strip().lower() if self.search_bar.is_open else ""
        self._shown = tuple(e for e in self._entries if not pattern or matches(e, pattern))
        table.clear()
        for entry in self._shown:
            table.add_row(*self._cells(entry), key=str(entry.eval_id))
        shown_ids = {entry.eval_id for entry in self._shown}
        if selected is not None and selected in shown_ids:
            table.move_cursor(row=table.get_row_index(str(selected)), animate=False)
        elif not self._placed and self._shown:
            # First fill: start on the newest eval, the one most likely to be reviewed.
            self._placed = True
            table.move_cursor(row=len(self._shown) - 1, animate=False)
        empty = self._loaded and not self._entries
        self.empty_panel.display = empty
        table.display = not empty
        self.detail.display = not empty
        self.status.update(self._status_text(len(self._shown), pattern))
        self._show_detail()

    def _cells(self, entry: EvalEntry) -> tuple[str | Text, ...]:
        record = entry.record
        marked = record.eval_id == self._marked
        cells: list[str | Text] = [
            Text("B", style="bold magenta") if marked else Text(" "),
            Text(record.label, style="bold"),
            Text(f"#{record.eval_id}", style="dim", justify="right"),
            Text(record.data_ref),
        ]
        if self.wide:
            cells.append(Text(clip(model_text(record), MODEL_CHARS) or "—", style="cyan"))
        cells += [
            Text(format_count(record.rows), justify="right"),
            self._scores_cell(entry),
            self._gate_cell(entry),
        ]
        if self.wide:
            cells.append(Text(format_when(record.created_at), style="dim"))
        return tuple(cells)

    def _scores_cell(self, entry: EvalEntry) -> Text:
        if entry.details is None:
            return PENDING
        scores = scores_text(entry.summaries) or "—"
        return Text(clip(scores, WIDE_SCORES if self.wide else NARROW_SCORES))

    def _gate_cell(self, entry: EvalEntry) -> Text:
        return PENDING if entry.details is None else gate_cell(entry.latest_gate)

    def _status_text(self, shown: int, pattern: str) -> Text:
        total = len(self._entries)
        text = Text()
        if pattern:
            text.append(f"{shown} of {total} evals match ", style="bold")
            text.append(repr(pattern))
        else:
            text.append(f"{total} eval{'s' if total != 1 else ''}", style="bold")
        marked = self.marked
        if marked is not None:
            text.append(f"  ·  baseline {marked.label} (b)", style="magenta")
        text.append(f"  ·  workspace {display_path(self.source.workspace.root)}", style="dim")
        return text

    def selected_eval_id(self) -> int | None:
        table = self.table
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return None if key.value is None else int(key.value)

    def _selected_entry(self) -> EvalEntry | None:
        eval_id = self.selected_eval_id()
        return next((entry for entry in self._shown if entry.eval_id == eval_id), None)

    def pair_for(self, candidate_id: int) -> ReviewPair | NoPair:
        """What enter opens with `candidate_id` highlighted."""
        return choose_pair(self._entries, candidate_id, self._marked)

    # -- the panel under the table -------------------------------------------------------
    def _show_detail(self) -> None:
        entry = self._selected_entry()
        if entry is None:
            empty = "No eval matches the filter." if self._entries else ""
            self.detail.update(Text(empty, style="dim"))
            return
        self.detail.update(self._detail_text(entry))

    def _detail_text(self, entry: EvalEntry) -> Text:
        """Three lines: what enter opens; the gate and the scores; model and provenance."""
        record = entry.record
        text = Text(end="")
        pending = entry.details is None
        pair = self.pair_for(record.eval_id)
        if pending and not marked_decides(self._entries, self._marked):
            text.append("reading its gate results…\n", style="dim")
        elif isinstance(pair, ReviewPair):
            text.append("enter", style="bold reverse")
            text.append(" reviews ")
            text.append(record.label, style="bold")
            text.append(" against ")
            text.append(pair.baseline.label, style="bold magenta")
            text.append(f" ({pair.reason})\n", style="dim")
        else:
            text.append(pair.message + "\n", style="yellow")
        gate = entry.latest_gate
        if pending:
            text.append("reading scores and gate results…", style="dim")
        elif gate is not None:
            text.append("gate ")
            text.append_text(gate_cell(gate))
            against = gate.baseline_label or f"#{gate.baseline_eval_id}"
            text.append(f" against {against} (#{gate.gate_id}, {format_when(gate.created_at)})")
        else:
            text.append("no gate run with it as candidate", style="dim")
        for summary in entry.summaries:
            skipped = f", {summary.skipped} not scored" if summary.skipped else ""
            text.append(" · ")
            text.append(summary.scorer, style="bold")
            text.append(f" {format_mean(summary.mean)} over {summary.scored}{skipped}")
        text.append("\n")
        recorded = [
            (name, value)
            for name, value in (
                ("model", record.model),
                ("adapter", record.adapter),
                ("prompt", record.prompt),
            )
            if value
        ]
        for index, (name, value) in enumerate(recorded):
            text.append(" · " if index else "")
            text.append(f"{name} ", style="dim")
            text.append(value, style="cyan")
        if not recorded:
            text.append("no model, adapter or prompt recorded", style="dim")
        text.append(f" · {record.source} {format_when(record.created_at)}", style="dim")
        return text

    @on(DataTable.RowHighlighted, "#evals-table")
    def _row_highlighted(self) -> None:
        self._show_detail()

    # -- actions -------------------------------------------------------------------------
    @on(DataTable.RowSelected, "#evals-table")
    def _open_review(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is None:
            return
        eval_id = int(event.row_key.value)
        entry = next((entry for entry in self._entries if entry.eval_id == eval_id), None)
        if (
            entry is not None
            and entry.details is None
            and not marked_decides(self._entries, self._marked)
        ):
            # Its gate may name the baseline: read it first, then open.
            self._pending_review = eval_id
            self._read_for_review(self.source, eval_id)
            return
        self._review(eval_id)

    def _review(self, eval_id: int) -> None:
        """Open the review room for `eval_id` as candidate, or say why there is no pair."""
        pair = self.pair_for(eval_id)
        if isinstance(pair, NoPair):
            self.notify(pair.message, title="No review pair", severity="warning", markup=False)
            return
        self.post_message(OpenReviewRoom(pair.baseline.label, pair.candidate.label))

    def action_mark_baseline(self) -> None:
        eval_id = self.selected_eval_id()
        if eval_id is None:
            return
        self._marked = None if self._marked == eval_id else eval_id
        self._fill_table()
