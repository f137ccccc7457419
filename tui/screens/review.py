"""The review room: a slice table of baseline against candidate, and a queue of examples to
judge side by side, one key per verdict.

Everything is read once in a worker (`core.evals.review.load_review_room`); filters run on the
loaded items in the UI thread. A verdict is shown at once and saved by a worker that writes
every verdict not yet saved, so a key pressed while a save is running is never lost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Static

from core.evals.judge import JudgeAgreement, judge_agreement
from core.evals.review import (
    FILTERS,
    Agreement,
    QueueFilter,
    ReviewItem,
    ReviewRoom,
    filter_queue,
    load_review_room,
    resume_index,
    reviewer_agreement,
    word_diff,
)
from core.evals.stats import SliceStats
from store.judges import JudgedExample
from store.reviews import ReviewRecord, Verdict
from tui.screens.base import FtodScreen
from tui.widgets.table import FtodTable

OVERALL_KEY = "\0overall"
NARROW_WIDTH = 100
MESSAGE_CHARS = 400
VERDICT_TEXT: dict[str, str] = {
    "baseline": "baseline better",
    "candidate": "candidate better",
    "tie": "tie",
    "both_wrong": "both wrong",
}
CATEGORY_STYLE: dict[str, str] = {
    "improvement": "green",
    "regression": "bold red",
    "both_pass": "dim green",
    "both_fail": "dim red",
    "disagreement": "yellow",
    "unscored": "dim",
}
InputMode = Literal["note", "search", "correct"]


def _number(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f}"


def _p_value(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.0e}"


def _clip(text: str, limit: int = MESSAGE_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part if isinstance(part, str) else str(part.get("text") or "")
            for part in content
            if isinstance(part, str | dict)
        )
    if message.get("tool_calls"):
        return f"[tool call] {message.get('tool_calls')}"
    return ""


def input_text(item: ReviewItem) -> Text:
    """The input conversation and the reference, one compact paragraph per message."""
    text = Text()
    for message in item.messages:
        role = str(message.get("role", "?"))
        style = "dim" if role in ("system", "developer") else ""
        limit = 120 if style else MESSAGE_CHARS
        text.append(f"{role}: ", style="bold cyan" if not style else "dim bold")
        text.append(_clip(_content(message), limit) + "\n", style=style)
    text.append("reference: ", style="bold magenta")
    reference = item.reference
    text.append(_clip(reference) if reference is not None else "(none)", style="magenta")
    return text


def sides_text(item: ReviewItem) -> tuple[Text, Text]:
    """Baseline and candidate outputs with the word diff: deletions red, insertions green."""
    baseline, candidate = Text(), Text()
    for op in word_diff(item.baseline_output, item.candidate_output):
        if op.tag == "equal":
            baseline.append(op.a_text)
            candidate.append(op.b_text)
            continue
        if op.a_text:
            baseline.append(op.a_text, style="bold red")
        if op.b_text:
            candidate.append(op.b_text, style="bold green")
    return baseline, candidate


def _score_text(score: float | None) -> str:
    return "not scored" if score is None else f"score {_number(score)}"


def agreement_text(agreement: tuple[Agreement, ...]) -> str:
    parts = [
        f"κ {a.first}/{a.second} {_number(a.kappa, 2)} (n={a.common})"
        for a in agreement
        if a.common
    ]
    return "  ".join(parts)


def judge_agreement_text(agreement: tuple[JudgeAgreement, ...]) -> str:
    return "  ".join(
        f"κ judge/{a.reviewer} {_number(a.kappa, 2)} (n={a.common})" for a in agreement if a.common
    )


def judge_text(verdict: JudgedExample) -> Text:
    """The LLM judge's verdict on one example, always labelled as the judge's."""
    text = Text("LLM judge: ", style="bold magenta")
    if verdict.verdict == "inconsistent":
        if (verdict.baseline_first, verdict.candidate_first) == ("baseline", "candidate"):
            detail = "it preferred whichever answer it read first"
        elif (verdict.baseline_first, verdict.candidate_first) == ("candidate", "baseline"):
            detail = "it preferred whichever answer it read second"
        else:
            detail = (
                f"{VERDICT_TEXT[verdict.baseline_first]} with A first, "
                f"{VERDICT_TEXT[verdict.candidate_first]} with B first"
            )
        text.append(f"inconsistent across the swap ({detail})", style="magenta")
    else:
        text.append(VERDICT_TEXT[verdict.verdict] + " in both orders", style="magenta")
    text.append(f" · P(B) {verdict.p_candidate:.2f}", style="dim magenta")
    return text


class ReviewScreen(FtodScreen):
    """Judge baseline against candidate, example by example; the slice table on top."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "1",
            "verdict('baseline')",
            "A",
            id="review.baseline",
            tooltip="Verdict: the baseline's answer is better",
        ),
        Binding(
            "2",
            "verdict('candidate')",
            "B",
            id="review.candidate",
            tooltip="Verdict: the candidate's answer is better",
        ),
        Binding("3", "verdict('tie')", "Tie", id="review.tie", tooltip="Verdict: equally good"),
        Binding(
            "4",
            "verdict('both_wrong')",
            "Wrong",
            id="review.both_wrong",
            tooltip="Verdict: neither answer is acceptable",
        ),
        Binding("n", "step(1)", "Next", id="review.next", tooltip="The next example"),
        Binding("p", "step(-1)", "Prev", id="review.previous", tooltip="The previous example"),
        Binding(
            "f",
            "cycle_filter",
            "Filter",
            id="review.filter",
            tooltip="Cycle: all, disagreements, regressions, improvements",
        ),
        Binding(
            "s",
            "cycle_scorer",
            "Scorer",
            id="review.scorer",
            tooltip="Score with the next scorer both evals stored (slice table and queue)",
        ),
        Binding(
            "slash",
            "search",
            "Find",
            id="review.search",
            tooltip="Only examples whose input or outputs contain a text",
        ),
        Binding(
            "e",
            "edit('note')",
            "Note",
            id="review.note",
            tooltip="Write a note that goes with the verdict",
        ),
        Binding(
            "c",
            "edit('correct')",
            "Correct",
            show=False,
            id="review.correct",
            tooltip="Write the corrected answer that goes with the verdict",
        ),
    ]

    @dataclass
    class Loaded(Message):
        """The pair, its comparison and the reviewers' verdicts, read in a worker."""

        room: ReviewRoom

    @dataclass
    class VerdictsSaved(Message):
        """Verdicts were written (in a worker); agreement re-read from the store."""

        saved: tuple[ReviewRecord, ...]
        agreement: tuple[Agreement, ...]
        judge_agreement: tuple[JudgeAgreement, ...] = ()

    def __init__(self, baseline_ref: str, candidate_ref: str, scorer: str | None = None) -> None:
        super().__init__()
        self.baseline_ref = baseline_ref
        self.candidate_ref = candidate_ref
        self.scorer = scorer
        self._room: ReviewRoom | None = None
        self._mine: dict[int, ReviewRecord] = {}
        self._queue_lines: frozenset[int] = frozenset()
        self._unsaved: dict[int, ReviewRecord] = {}
        self._agreement: tuple[Agreement, ...] = ()
        self._judge_agreement: tuple[JudgeAgreement, ...] = ()
        self._queue: tuple[ReviewItem, ...] = ()
        self._index = 0
        self._filter: QueueFilter = "all"
        self._slice: str | None = None
        self._search: str | None = None
        self._pending_note: str | None = None
        self._pending_correction: str | None = None
        self._input_mode: InputMode | None = None

    # -- state read by tests and the footer ---------------------------------------------------
    @property
    def room(self) -> ReviewRoom | None:
        return self._room

    @property
    def queue(self) -> tuple[ReviewItem, ...]:
        return self._queue

    @property
    def current(self) -> ReviewItem | None:
        return self._queue[self._index] if self._queue else None

    @property
    def queue_filter(self) -> QueueFilter:
        return self._filter

    @property
    def reviewer(self) -> str:
        return self._room.reviewer if self._room is not None else ""

    @property
    def reviewed_in_queue(self) -> int:
        # The reviewer's verdicts are few next to a queue of 100k: intersect from their side.
        return sum(1 for line in self._mine if line in self._queue_lines)

    @property
    def progress_text(self) -> str:
        return f"{self.reviewed_in_queue} / {len(self._queue)} reviewed by {self.reviewer}"

    @property
    def input(self) -> Input:
        return self.query_one("#review-input", Input)

    # -- layout -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("Loading…", id="review-status")
        yield FtodTable(id="review-slices")
        with VerticalScroll(id="review-body"):
            yield Static(id="review-head")
            yield Static(id="review-input-view")
            with Horizontal(id="review-sides"):
                yield Static(id="review-baseline")
                yield Static(id="review-candidate")
        yield Input(id="review-input")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "review"
        table = self.query_one("#review-slices", FtodTable)
        for label, key in (
            ("slice", "slice"),
            (Text("n", justify="right"), "n"),
            (Text("base", justify="right"), "a"),
            (Text("cand", justify="right"), "b"),
            (Text("delta", justify="right"), "delta"),
            ("CI", "ci"),
            (Text("p", justify="right"), "p"),
            ("gate", "gate"),
        ):
            table.add_column(label, key=key)
        self._fit(self.size.width)
        self._load()

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.width)

    def _fit(self, width: int) -> None:
        self.query_one("#review-sides").set_class(width < NARROW_WIDTH, "-narrow")

    # -- loading ------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="review-load")
    def _load(self) -> None:
        repos = self.source.repos
        room = load_review_room(
            repos.evals,
            repos.reviews,
            self.baseline_ref,
            self.candidate_ref,
            self.scorer,
            judges=repos.judges,
        )
        self.post_message(self.Loaded(room))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        room = event.room
        first = self._room is None
        self._room = room
        self._mine = dict(room.mine)
        self._mine.update(self._unsaved)
        self._agreement = room.agreement
        self._judge_agreement = room.judge.agreement if room.judge is not None else ()
        self._fill_slices(room)
        # A reload under another scorer keeps the example in view; the first load resumes.
        self._refilter(resume=first)

    def load_failed(self, error: BaseException | None) -> None:
        self.query_one("#review-status", Static).update("Could not load the review room.")

    def _fill_slices(self, room: ReviewRoom) -> None:
        table = self.query_one("#review-slices", FtodTable)
        table.clear()
        comparison = room.comparison
        if comparison is None:
            return
        gate = room.gate
        judge = room.judge.summary if room.judge is not None else None
        if judge is not None and "judge" not in table.columns:
            table.add_column(Text("judge", justify="right"), key="judge")
        judge_rates = {entry.slice: entry.win_rate for entry in judge.slices} if judge else {}
        if judge is not None:
            judge_rates[comparison.overall.slice] = judge.overall.win_rate

        def judge_cell(name: str) -> Text:
            # The candidate's win rate by the LLM judge, kept visibly apart from the scores.
            rate = judge_rates.get(name)
            return Text(_number(rate, 2), justify="right", style="magenta")

        def gate_cell(name: str) -> Text:
            if gate is None:
                return Text("—", style="dim")
            passed = gate.passed if name == comparison.overall.slice else gate.slices.get(name)
            if passed is None:
                return Text("—", style="dim")
            return Text("PASS", style="green") if passed else Text("FAIL", style="bold red")

        def row(stats: SliceStats, key: str) -> None:
            delta_style = "green" if stats.delta > 0 else "red" if stats.delta < 0 else ""
            cells: list[str | Text] = [
                stats.slice,
                Text(str(stats.n), justify="right"),
                Text(_number(stats.mean_a), justify="right"),
                Text(_number(stats.mean_b), justify="right"),
                Text(f"{stats.delta:+.3f}", justify="right", style=delta_style),
                f"[{stats.ci[0]:+.2f}, {stats.ci[1]:+.2f}]",
                Text(_p_value(stats.p), justify="right"),
                gate_cell(stats.slice),
            ]
            if judge is not None:
                cells.append(judge_cell(stats.slice))
            table.add_row(*cells, key=key)

        for stats in comparison.slices:
            row(stats, stats.slice)
        row(comparison.overall, OVERALL_KEY)

    # -- the queue ----------------------------------------------------------------------------
    def _refilter(self, *, resume: bool = False) -> None:
        room = self._room
        if room is None:
            return
        keep = self.current
        self._queue = filter_queue(room.pair.items, self._filter, self._slice, self._search)
        self._queue_lines = frozenset(item.line for item in self._queue)
        lines = [item.line for item in self._queue]
        if resume or keep is None or keep.line not in lines:
            self._index = resume_index(self._queue, self._mine)
        else:
            self._index = lines.index(keep.line)
        self._show()

    def _status(self) -> Text:
        room = self._room
        if room is None:
            return Text("Loading…")
        pair = room.pair
        text = Text.assemble(
            ("A ", "bold"),
            pair.baseline.label,
            (" vs B ", "bold"),
            pair.candidate.label,
            f" · {pair.scorer} · ",
            ("filter ", "dim"),
            (self._filter, "bold"),
        )
        if self._slice is not None:
            text.append(f" · slice {self._slice}")
        if self._search:
            text.append(f" · “{self._search}”")
        if self._queue:
            text.append(f" · {self._index + 1}/{len(self._queue)}")
        text.append(f" · {self.progress_text}", style="bold")
        kappa = agreement_text(self._agreement)
        if kappa:
            text.append(f" · {kappa}", style="cyan")
        judge_kappa = judge_agreement_text(self._judge_agreement)
        if judge_kappa:
            text.append(f" · {judge_kappa}", style="magenta")
        return text

    def _show(self) -> None:
        self.query_one("#review-status", Static).update(self._status())
        head = self.query_one("#review-head", Static)
        view = self.query_one("#review-input-view", Static)
        baseline = self.query_one("#review-baseline", Static)
        candidate = self.query_one("#review-candidate", Static)
        item = self.current
        if item is None:
            head.update(Text("No example matches this filter (f: next filter).", style="dim"))
            for widget in (view, baseline, candidate):
                widget.update("")
            return
        head_text = Text.assemble(
            (f"line {item.line}", "bold"),
            f" · slice {item.slice or '—'} · ",
            (item.category.replace("_", " "), CATEGORY_STYLE.get(item.category, "")),
        )
        mine = self._mine.get(item.line)
        if mine is not None:
            head_text.append(f" · you: {VERDICT_TEXT[mine.verdict]}", style="bold yellow")
            if mine.note:
                head_text.append(f" ({_clip(mine.note, 60)})", style="yellow")
        if self._pending_note:
            head_text.append(f" · note: {_clip(self._pending_note, 60)}", style="italic")
        if self._pending_correction:
            head_text.append(" · corrected answer pending", style="italic")
        judged = self._room.judge if self._room is not None else None
        verdict = judged.verdicts.get(item.line) if judged is not None else None
        if verdict is not None:
            head_text.append("\n")
            head_text.append_text(judge_text(verdict))
        head.update(head_text)
        view.update(input_text(item))
        a_text, b_text = sides_text(item)
        pair = self._room.pair if self._room is not None else None
        a_label = pair.baseline.label if pair is not None else "baseline"
        b_label = pair.candidate.label if pair is not None else "candidate"
        baseline.update(
            Text.assemble((f"A {a_label}", "bold"), f"  {_score_text(item.score_a)}\n", a_text)
        )
        candidate.update(
            Text.assemble((f"B {b_label}", "bold"), f"  {_score_text(item.score_b)}\n", b_text)
        )
        self.query_one("#review-body", VerticalScroll).scroll_home(animate=False)

    def action_step(self, delta: int) -> None:
        if not self._queue:
            return
        self._index = (self._index + delta) % len(self._queue)
        self._pending_note = self._pending_correction = None
        self._show()

    def action_cycle_scorer(self) -> None:
        room = self._room
        if room is None:
            return
        pair = room.pair
        names = [n for n in pair.baseline.scorer_names if n in pair.candidate.scorer_names]
        if pair.scorer not in names:
            names.insert(0, pair.scorer)
        if len(names) < 2:
            self.notify(
                f"Both evals share only the {pair.scorer} scorer; "
                "`ftod review --scorer SPEC` scores with any other.",
                markup=False,
            )
            return
        self.scorer = names[(names.index(pair.scorer) + 1) % len(names)]
        self.query_one("#review-status", Static).update(f"Scoring with {self.scorer}…")
        self._load()

    def action_cycle_filter(self) -> None:
        self._filter = FILTERS[(FILTERS.index(self._filter) + 1) % len(FILTERS)]
        self._refilter()

    @on(DataTable.RowSelected, "#review-slices")
    def _slice_chosen(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        self._slice = None if key in (None, OVERALL_KEY) else key
        self._refilter()

    # -- verdicts -----------------------------------------------------------------------------
    def action_verdict(self, verdict: Verdict) -> None:
        item, room = self.current, self._room
        if item is None or room is None:
            return
        earlier = self._mine.get(item.line)
        note = self._pending_note
        if note is None:
            note = earlier.note if earlier is not None else ""
        corrected = self._pending_correction
        if corrected is None and earlier is not None:
            corrected = earlier.corrected
        self._record(item, verdict, note, corrected)
        self._pending_note = self._pending_correction = None
        if self.reviewed_in_queue == len(self._queue):
            self.notify(f"All {len(self._queue)} examples of this queue reviewed.", markup=False)
            self._show()
            return
        self._index = resume_index(self._queue, self._mine, self._index + 1)
        self._show()

    def _record(self, item: ReviewItem, verdict: Verdict, note: str, corrected: str | None) -> None:
        room = self._room
        assert room is not None
        record = ReviewRecord(
            baseline_eval_id=room.pair.baseline.eval_id,
            candidate_eval_id=room.pair.candidate.eval_id,
            line=item.line,
            reviewer=room.reviewer,
            verdict=verdict,
            note=note,
            corrected=corrected,
            created_at=datetime.now(),
        )
        self._mine[item.line] = record
        self._unsaved[item.line] = record
        self._save(tuple(self._unsaved.values()))

    @work(thread=True, exclusive=True, exit_on_error=False, group="review-save")
    def _save(self, records: tuple[ReviewRecord, ...]) -> None:
        # Every verdict not yet saved travels in each call, so one that a newer save
        # cancelled before it ran is written by the newer one.
        repository = self.source.repos.reviews
        saved = tuple(
            repository.save_verdict(
                record.baseline_eval_id,
                record.candidate_eval_id,
                record.line,
                record.reviewer,
                record.verdict,
                record.note,
                record.corrected,
                record.created_at,
            )
            for record in records
        )
        if not saved:
            return
        first = saved[0]
        everyone = repository.verdicts(first.baseline_eval_id, first.candidate_eval_id)
        judged = self._room.judge if self._room is not None else None
        with_judge = (
            judge_agreement(judged.verdicts.values(), everyone) if judged is not None else ()
        )
        self.post_message(self.VerdictsSaved(saved, reviewer_agreement(everyone), with_judge))

    @on(VerdictsSaved)
    def _saved(self, event: VerdictsSaved) -> None:
        for record in event.saved:
            if self._unsaved.get(record.line) == record:
                del self._unsaved[record.line]
        self._agreement = event.agreement
        self._judge_agreement = event.judge_agreement
        self.query_one("#review-status", Static).update(self._status())

    # -- the input line (note, corrected answer, search) -------------------------------------
    def action_edit(self, mode: InputMode) -> None:
        item = self.current
        if item is None:
            return
        earlier = self._mine.get(item.line)
        if mode == "note":
            value = self._pending_note or (earlier.note if earlier is not None else "")
            placeholder = "A note for this verdict (enter keeps it, escape drops it)"
        else:
            value = self._pending_correction or (
                earlier.corrected if earlier is not None and earlier.corrected else ""
            )
            value = value or item.candidate_output
            placeholder = "The corrected answer (enter keeps it, escape drops it)"
        self._open_input(mode, value, placeholder)

    def action_search(self) -> None:
        self._open_input("search", self._search or "", "Text to find in input or outputs")

    def _open_input(self, mode: InputMode, value: str, placeholder: str) -> None:
        self._input_mode = mode
        line = self.input
        line.placeholder = placeholder
        line.value = value
        line.add_class("-open")
        line.focus()

    def has_open_search(self) -> bool:
        return self._input_mode is not None

    def close_search(self) -> None:
        self._input_mode = None
        line = self.input
        line.remove_class("-open")
        line.value = ""
        self.query_one("#review-slices", FtodTable).focus()

    @on(Input.Submitted, "#review-input")
    def _submitted(self, event: Input.Submitted) -> None:
        mode, value = self._input_mode, event.value
        self.close_search()
        if mode == "search":
            self._search = value.strip() or None
            self._refilter()
            return
        item = self.current
        if item is None:
            return
        if mode == "note":
            self._pending_note = value.strip()
        elif mode == "correct":
            self._pending_correction = value if value.strip() else None
        earlier = self._mine.get(item.line)
        if earlier is not None:
            # Already judged: keep the verdict, save the new note or answer now.
            note = self._pending_note if self._pending_note is not None else earlier.note
            corrected = self._pending_correction or earlier.corrected
            self._pending_note = self._pending_correction = None
            self._record(item, earlier.verdict, note, corrected)
        self._show()
