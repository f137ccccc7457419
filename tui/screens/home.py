"""Home: the loop decide → data → baseline → train → evaluate → review → gate → ship, one
row per stage with its status from the store; the highlighted row's next action below,
enter goes to that stage's screen (the app routes the request).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from core.home import StageStatus, StageTarget, data_row_ref, first_open_stage, loop_status
from core.runs.ingest import ingest_runs
from store.errors import StoreBusyError
from tui.formatting import display_path
from tui.screens.base import DataSource, FtodScreen, error_text
from tui.widgets.table import FtodTable

STATE_MARKS: dict[str, tuple[str, str]] = {
    "done": ("✓", "green"),
    "attention": ("!", "bold yellow"),
    "todo": ("·", "dim"),
}


@dataclass
class OpenStage(Message):
    """Go to the screen that carries one stage of the loop forward (the app routes it)."""

    stage: StageStatus


class HomeScreen(FtodScreen):
    """The loop on one screen: each stage's status, the next action, enter goes there."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reload", "Reload", id="home.reload", tooltip="Read the store again"),
    ]

    @dataclass
    class LoopLoaded(Message):
        """Every stage's status, read in a worker."""

        stages: tuple[StageStatus, ...]

    def __init__(self) -> None:
        super().__init__()
        self._stages: tuple[StageStatus, ...] = ()
        self._failed = False

    # -- typed accessors -----------------------------------------------------------------
    @property
    def table(self) -> FtodTable:
        return self.query_one("#home-table", FtodTable)

    @property
    def status(self) -> Static:
        return self.query_one("#home-status", Static)

    @property
    def next_panel(self) -> Static:
        return self.query_one("#home-next", Static)

    @property
    def stages(self) -> tuple[StageStatus, ...]:
        """The stages last loaded."""
        return self._stages

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(id="home-status", classes="status-line")
        yield FtodTable(id="home-table")
        yield Static(id="home-next")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "home"
        table = self.table
        table.add_column(" ", key="state")
        table.add_column("stage", key="stage")
        table.add_column("status", key="status")
        table.loading = True
        self.next_panel.border_title = "next"
        self.reload()

    def on_screen_resume(self) -> None:
        # Back from another screen: a run may have finished or an eval been added meanwhile.
        if self._stages and not self._failed:
            self.reload()

    # -- loading -------------------------------------------------------------------------
    def reload(self) -> None:
        self._failed = False
        self._load(self.source)

    def action_reload(self) -> None:
        self.reload()

    @work(thread=True, exclusive=True, exit_on_error=False, group="home")
    def _load(self, source: DataSource) -> None:
        # The train row counts runs from the store's index: bring it up to date with the run
        # directories first (as the runs screen does), unless the CLI holds the store now.
        with contextlib.suppress(StoreBusyError):
            ingest_runs(source.workspace, source.repos.runs)
        decisions, audits = _newest_decisions(source)
        shown = data_row_ref(source.repos)
        stages = loop_status(source.repos, decisions=decisions, audit_share=audits.get(shown))
        self.post_message(self.LoopLoaded(tuple(stages)))

    def load_failed(self, error: BaseException | None) -> None:
        self._failed = True
        self.table.loading = False
        self.status.update(
            Text.assemble(
                ("Could not read the workspace: ", "bold red"),
                error_text(error),
                (" (r retries)", "dim"),
            )
        )

    @on(LoopLoaded)
    def _show_loop(self, message: LoopLoaded) -> None:
        first_load = not self._stages
        self._stages = message.stages
        table = self.table
        row = table.cursor_row if not first_load else first_open_stage(message.stages)
        table.loading = False
        table.clear()
        for stage in message.stages:
            mark, style = STATE_MARKS[stage.state]
            table.add_row(
                Text(mark, style=style),
                Text(stage.stage, style="bold"),
                Text(stage.status_text, style="yellow" if stage.state == "attention" else ""),
                key=stage.stage,
            )
        table.move_cursor(row=min(max(row, 0), len(message.stages) - 1))
        self._show_next()
        done = sum(stage.state == "done" for stage in message.stages)
        self.status.update(
            Text.assemble(
                (f"{done} of {len(message.stages)} stages done", "bold"),
                (f"  ·  workspace {display_path(self.source.workspace.root)}", "dim"),
            )
        )
        table.focus()

    def _selected(self) -> StageStatus | None:
        if not self._stages or not self.table.row_count:
            return None
        return self._stages[min(self.table.cursor_row, len(self._stages) - 1)]

    def _show_next(self) -> None:
        stage = self._selected()
        if stage is None:
            self.next_panel.update("")
            return
        where = "" if stage.target is None else f"\nenter: {_target_text(stage.target)}"
        self.next_panel.update(
            Text.assemble((f"{stage.stage}: ", "bold"), stage.next_action, (where, "dim"))
        )

    @on(DataTable.RowHighlighted, "#home-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_next()

    @on(DataTable.RowSelected, "#home-table")
    def _open_stage(self, event: DataTable.RowSelected) -> None:
        stage = self._selected()
        if stage is None:
            return
        if stage.target is None:
            self.notify(stage.next_action, title=stage.stage, markup=False)
            return
        self.post_message(OpenStage(stage))


def _target_text(target: StageTarget) -> str:
    """Where enter goes, as the person reads it."""
    if target.screen == "version":
        return f"open {target.ref}"
    if target.screen == "run":
        return f"open run {target.ref}"
    if target.screen == "review":
        return f"the review room, {target.ref} vs {target.other}"
    return f"the {target.screen} screen"


def _newest_decisions(
    source: DataSource,
) -> tuple[list[dict[str, object]], dict[str | None, float]]:
    """The latest version of every stored decision, newest first, as the decide row reads
    it; and the knowledge-audit share each decision measured, by the dataset it audited.
    The share comes from the records (the audit reads every row; Home must paint in 1 s)."""
    from store.decisions import DecisionRepository

    latest = DecisionRepository(source.repos.datasets.store).list_latest()
    latest.sort(key=lambda pair: pair[0].created_at, reverse=True)
    audits: dict[str | None, float] = {}
    for record, _versions in reversed(latest):  # oldest first: the newest one wins
        audit = record.payload.get("knowledge_audit")
        dataset = (record.payload.get("links") or {}).get("dataset")
        if isinstance(audit, dict) and isinstance(audit.get("share"), int | float):
            audits[dataset] = float(audit["share"])
    decisions: list[dict[str, object]] = [
        {"name": record.name, "verdict": record.verdict, "version": record.version}
        for record, _versions in latest
    ]
    return decisions, audits
