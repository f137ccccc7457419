"""The findings of a version (optionally one check), paged 200 at a time as the cursor moves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Static

from store.datasets import PAGE_SIZE, FindingRecord
from tui.formatting import format_count, format_lines, severity_style
from tui.screens.base import DataSource, FtodScreen, OpenExample, error_text
from tui.widgets.search import SearchBar
from tui.widgets.table import FtodTable

# Load the next page when the cursor comes this close to the last loaded row.
PREFETCH_MARGIN = 50
# Typing waits this long for the next key before searching (enter searches at once).
SEARCH_DEBOUNCE_S = 0.3
MESSAGE_PREVIEW_CHARS = 160


@dataclass(frozen=True, slots=True)
class FindingsQuery:
    """What the table shows; `generation` tells a stale page from a current one."""

    version_id: int
    check: str | None
    search: str | None
    generation: int
    severity: str | None = None


class FindingsScreen(FtodScreen):
    """A lazily paged table of findings; enter shows the rows behind one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "slash", "search", "Search", id="findings.search", tooltip="Search finding messages"
        ),
    ]

    @dataclass
    class FindingsPageLoaded(Message):
        query: FindingsQuery
        offset: int
        findings: tuple[FindingRecord, ...]
        total: int | None  # counted with the first page only
        ref: str | None  # the version's name@v, read with the first page only

    def __init__(
        self, version_id: int, check: str | None = None, severity: str | None = None
    ) -> None:
        super().__init__()
        self.version_id = version_id
        self.check = check
        self.severity = severity
        self._query = FindingsQuery(version_id, check, None, 0, severity)
        self._findings: list[FindingRecord] = []
        self._total = 0
        self._ref: str | None = None
        self._loading = False
        self._search_timer: Timer | None = None

    # -- typed accessors -----------------------------------------------------------------
    @property
    def table(self) -> FtodTable:
        return self.query_one("#findings-table", FtodTable)

    @property
    def status(self) -> Static:
        return self.query_one("#findings-status", Static)

    @property
    def detail(self) -> Static:
        return self.query_one("#finding-detail", Static)

    @property
    def search_bar(self) -> SearchBar:
        return self.query_one("#findings-search", SearchBar)

    @property
    def loaded(self) -> int:
        return len(self._findings)

    @property
    def total(self) -> int:
        return self._total

    @property
    def ref(self) -> str | None:
        return self._ref

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(Text("loading…", style="dim"), id="findings-status", classes="status-line")
        yield FtodTable(id="findings-table")
        yield Static(id="finding-detail", classes="detail-panel")
        yield SearchBar(
            "search finding messages (enter keeps it, escape clears)", id="findings-search"
        )
        yield Footer()

    def on_mount(self) -> None:
        table = self.table
        table.add_column("check", key="check")
        table.add_column("severity", key="severity")
        table.add_column("lines", key="lines")
        table.add_column("message", key="message")
        table.loading = True
        self.sub_title = "findings"
        self._start_query(None)

    # -- loading -------------------------------------------------------------------------
    def _start_query(self, search: str | None) -> None:
        self._query = FindingsQuery(
            self.version_id, self.check, search, self._query.generation + 1, self.severity
        )
        self._loading = True
        self._load_page(self.source, self._query, 0, need_ref=self._ref is None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="findings")
    def _load_page(
        self, source: DataSource, query: FindingsQuery, offset: int, need_ref: bool
    ) -> None:
        repository = source.repository()
        findings = repository.findings_page(
            query.version_id,
            check=query.check,
            severity=query.severity,
            search=query.search,
            offset=offset,
            limit=PAGE_SIZE,
        )
        total = None
        if offset == 0:
            total = repository.count_findings(
                query.version_id, query.check, query.search, query.severity
            )
        ref = repository.version_by_id(query.version_id).ref if need_ref else None
        self.post_message(self.FindingsPageLoaded(query, offset, tuple(findings), total, ref))

    @on(FindingsPageLoaded)
    def _add_page(self, message: FindingsPageLoaded) -> None:
        if message.query != self._query:
            return  # a page of a search that has since changed
        table = self.table
        if message.ref is not None:
            self._ref = message.ref
        if message.offset == 0:
            self._findings = []
            self._total = message.total or 0
            table.clear()
        elif message.offset != len(self._findings):
            return
        self._loading = False
        table.loading = False
        if message.offset == 0 and not self.search_bar.has_focus:
            table.focus()
            self.refresh_bindings()
        for finding in message.findings:
            self._findings.append(finding)
            table.add_row(*_row_cells(finding), key=str(finding.finding_id))
        self._update_status()
        if message.offset == 0:
            self._show_detail(0)

    def load_failed(self, error: BaseException | None) -> None:
        self._loading = False
        self.table.loading = False
        self.status.update(
            Text.assemble(("Could not read the findings: ", "bold red"), error_text(error))
        )

    def _maybe_load_more(self, cursor_row: int) -> None:
        if self._loading or self.loaded >= self._total:
            return
        if cursor_row >= self.loaded - PREFETCH_MARGIN:
            self._loading = True
            self._load_page(self.source, self._query, self.loaded, need_ref=False)

    def _update_status(self) -> None:
        text = Text()
        text.append(self._ref or "…", style="bold")
        text.append("  ·  ")
        text.append(f"check {self.check}" if self.check else "all checks")
        text.append("  ·  ")
        position = self.table.cursor_row + 1 if self._findings else 0
        text.append(f"{format_count(position)} of {format_count(self._total)}", style="bold")
        text.append(" findings")
        if self.loaded < self._total:
            text.append(f"  ({format_count(self.loaded)} loaded)", style="dim")
        if self._query.search:
            text.append(f"  ·  search {self._query.search!r}", style="italic")
        self.status.update(text)
        scope = f": {self.check}" if self.check else ""
        if self.check and self.severity:
            scope += f" ({self.severity})"
        self.sub_title = f"{self._ref or ''} · findings{scope}"

    def _show_detail(self, row: int) -> None:
        if not 0 <= row < len(self._findings):
            empty = "No finding matches the search." if self._query.search else "No findings."
            self.detail.update(Text(empty, style="dim"))
            return
        finding = self._findings[row]
        text = Text()
        text.append(f"lines {format_lines(finding.lines, limit=8)}", style="bold")
        if finding.other_path is not None:
            text.append(
                f"  ·  other {finding.other_path} lines {format_lines(finding.other_lines)}"
            )
        text.append("\n")
        text.append(finding.message)
        self.detail.update(text)

    # -- events --------------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#findings-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(event.cursor_row)
        self._update_status()
        self._maybe_load_more(event.cursor_row)

    @on(DataTable.RowSelected, "#findings-table")
    def _open_finding(self, event: DataTable.RowSelected) -> None:
        if 0 <= event.cursor_row < len(self._findings):
            self.post_message(OpenExample(self.version_id, self._findings[event.cursor_row]))

    def action_search(self) -> None:
        self.search_bar.open()

    def has_open_search(self) -> bool:
        return self.search_bar.is_open

    def close_search(self) -> None:
        self.search_bar.close()
        self.table.focus()
        self._search_now()

    def _search_now(self) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
            self._search_timer = None
        search = self.search_bar.value.strip() or None
        if search != self._query.search:
            self._start_query(search)

    @on(Input.Changed, "#findings-search")
    def _search_changed(self) -> None:
        # Each search scans the version's findings: wait for a pause in typing.
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(SEARCH_DEBOUNCE_S, self._search_now)

    @on(Input.Submitted, "#findings-search")
    def _search_submitted(self) -> None:
        self._search_now()
        self.table.focus()


def _row_cells(finding: FindingRecord) -> tuple[str | Text, ...]:
    message = " ".join(finding.message.split())
    if len(message) > MESSAGE_PREVIEW_CHARS:
        message = message[: MESSAGE_PREVIEW_CHARS - 1] + "…"
    return (
        finding.check,
        Text(finding.severity, style=severity_style(finding.severity)),
        format_lines(finding.lines),
        message,
    )
