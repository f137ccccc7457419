"""One dataset version: header, findings per check, tokens, shape, balance, splits, audit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from core.checks.volatile_fact import KnowledgeAudit
from store.datasets import SplitRecord, VersionRecord
from tui.formatting import (
    display_path,
    format_count,
    format_share,
    format_when,
    severity_style,
    short_hash,
)
from tui.screens.base import DataSource, FtodScreen, OpenFindings, error_text
from tui.widgets.bars import BarChart
from tui.widgets.scroll import ScrollPane
from tui.widgets.table import FtodTable

TABS: tuple[tuple[str, str], ...] = (
    ("findings", "Findings"),
    ("tokens", "Tokens"),
    ("shape", "Shape"),
    ("balance", "Balance"),
    ("splits", "Splits"),
    ("audit", "Audit"),
)
AUDIT_DRIFT_ROWS = 3  # drift entries shown, so the panel fits an 80×24 terminal


@dataclass(frozen=True, slots=True)
class CheckCount:
    check: str
    severity: str
    findings: int
    rows: int


@dataclass(frozen=True, slots=True)
class VersionDetail:
    """Everything the screen shows, read in one worker run."""

    version: VersionRecord
    siblings: tuple[int, ...]  # version_ids of the same dataset, oldest first
    counts: tuple[CheckCount, ...]
    splits: tuple[SplitRecord, ...]
    audit: KnowledgeAudit | None = None

    @property
    def position(self) -> int:
        return self.siblings.index(self.version.version_id)


class VersionScreen(FtodScreen):
    """Detail of a dataset version; `[`/`]` step through the dataset's versions."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "f",
            "all_findings",
            "All findings",
            id="version.findings",
            tooltip="Every finding of this version",
        ),
        Binding(
            "left_square_bracket",
            "step(-1)",
            "Older",
            id="version.previous",
            tooltip="Open the previous version of this dataset",
        ),
        Binding(
            "right_square_bracket",
            "step(1)",
            "Newer",
            id="version.next",
            tooltip="Open the next version of this dataset",
        ),
        *(
            Binding(
                str(number),
                f"show_tab('{tab}')",
                f"{title} tab",
                show=False,
                id=f"version.tab.{tab}",
            )
            for number, (tab, title) in enumerate(TABS, start=1)
        ),
    ]

    @dataclass
    class VersionLoaded(Message):
        detail: VersionDetail

    def __init__(self, version_id: int | None = None, *, ref: str | None = None) -> None:
        """Open a version by id, or by reference ('name' for the latest, 'name@3')."""
        if (version_id is None) == (ref is None):
            raise ValueError("give exactly one of version_id or ref")
        super().__init__()
        self.version_id = version_id
        self.ref = ref
        self._detail: VersionDetail | None = None

    # -- typed accessors -----------------------------------------------------------------
    @property
    def detail(self) -> VersionDetail | None:
        return self._detail

    @property
    def checks(self) -> tuple[str, ...]:
        """The checks with findings in the loaded version (for the command palette)."""
        if self._detail is None:
            return ()
        return tuple(dict.fromkeys(count.check for count in self._detail.counts))

    @property
    def info(self) -> Static:
        return self.query_one("#version-info", Static)

    @property
    def checks_table(self) -> FtodTable:
        return self.query_one("#checks-table", FtodTable)

    @property
    def tabs(self) -> TabbedContent:
        return self.query_one("#version-tabs", TabbedContent)

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(Text("loading…", style="dim"), id="version-info", classes="info-panel")
        with TabbedContent(id="version-tabs"):
            with TabPane("1 Findings", id="findings"):
                yield FtodTable(id="checks-table")
                yield Static(id="checks-hint", classes="hint")
            with TabPane("2 Tokens", id="tokens"), ScrollPane():
                yield Static(id="token-stats")
                yield BarChart("Total tokens per row", color="dodger_blue2", id="token-histogram")
            with TabPane("3 Shape", id="shape"), ScrollPane():
                yield Static(id="shape-stats")
                yield BarChart("Messages by role", color="medium_purple", id="role-chart")
            with TabPane("4 Balance", id="balance"), ScrollPane():
                yield BarChart("Labels (metadata.label)", id="label-chart")
                yield BarChart("Slices (metadata.slice)", color="dark_orange", id="slice-chart")
            with TabPane("5 Splits", id="splits"), ScrollPane():
                yield Static(id="splits-panel")
            with TabPane("6 Audit", id="audit"), ScrollPane():
                yield Static(id="audit-panel")
        yield Footer()

    def on_mount(self) -> None:
        table = self.checks_table
        table.add_column("check", key="check")
        table.add_column("severity", key="severity")
        table.add_column(Text("findings", justify="right"), key="findings")
        table.add_column(Text("rows", justify="right"), key="rows")
        table.loading = True
        self.sub_title = self.ref or "version"
        self._load(self.source, self.version_id, self.ref)

    # -- loading -------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="version")
    def _load(self, source: DataSource, version_id: int | None, ref: str | None) -> None:
        repository = source.repository()
        version = repository.version_by_id(version_id) if version_id is not None else None
        if version is None:
            assert ref is not None
            version = repository.version(ref)
        siblings = tuple(v.version_id for v in repository.versions(version.dataset))
        counts = tuple(CheckCount(*row) for row in repository.finding_counts(version.version_id))
        splits = tuple(repository.splits(version.version_id))
        # The knowledge audit reads every stored row, so it runs here, off the UI thread.
        from core.knowledge_audit import audit_version
        from core.settings import load_settings

        terms = load_settings(source.workspace.root).strings("audit", "volatile_terms")
        audit = audit_version(repository, version.version_id, terms=terms)
        self.post_message(
            self.VersionLoaded(VersionDetail(version, siblings, counts, splits, audit))
        )

    @on(VersionLoaded)
    def _show_version(self, message: VersionLoaded) -> None:
        detail = message.detail
        self._detail = detail
        version = detail.version
        self.version_id = version.version_id
        self.sub_title = version.ref
        self.info.update(info_text(detail))
        self._fill_checks(detail)
        summary = version.summary
        self.query_one("#token-stats", Static).update(token_stats(version))
        histogram = summary.get("tokens", {}).get("histogram", [])
        self.query_one("#token-histogram", BarChart).show(
            histogram_rows(histogram, version.max_seq_len),
            note=f"max_seq_len {version.max_seq_len:,}",
        )
        self.query_one("#shape-stats", Static).update(shape_stats(summary))
        self.query_one("#role-chart", BarChart).show(counter_rows(summary.get("roles", {})))
        self.query_one("#label-chart", BarChart).show(counter_rows(summary.get("labels", {})))
        self.query_one("#slice-chart", BarChart).show(counter_rows(summary.get("slices", {})))
        self.query_one("#splits-panel", Static).update(splits_panel(version, detail.splits))
        self.query_one("#audit-panel", Static).update(audit_panel(detail.audit))

    def load_failed(self, error: BaseException | None) -> None:
        self.checks_table.loading = False
        what = self.ref or f"version {self.version_id}"
        self.info.update(
            Text.assemble((f"{what} could not be loaded: ", "bold red"), error_text(error))
        )

    def _fill_checks(self, detail: VersionDetail) -> None:
        table = self.checks_table
        table.loading = False
        table.clear()
        for count in detail.counts:
            table.add_row(
                count.check,
                Text(count.severity, style=severity_style(count.severity)),
                Text(format_count(count.findings), justify="right"),
                Text(format_count(count.rows), justify="right"),
                key=f"{count.check}\x1f{count.severity}",
            )
        hint = self.query_one("#checks-hint", Static)
        table.display = bool(detail.counts)
        if detail.counts:
            hint.update(Text("enter: findings of that check  ·  f: all findings", style="dim"))
        else:
            hint.update(Text("No findings: every row passed every check.", style="green"))
        if self.tabs.active == "findings":
            table.focus()
            self.refresh_bindings()

    # -- actions -------------------------------------------------------------------------
    @on(DataTable.RowSelected, "#checks-table")
    def _open_check(self, event: DataTable.RowSelected) -> None:
        if self._detail is None or event.row_key.value is None:
            return
        check, _, severity = str(event.row_key.value).partition("\x1f")
        self.post_message(OpenFindings(self._detail.version.version_id, check, severity or None))

    def action_all_findings(self) -> None:
        if self._detail is not None:
            self.post_message(OpenFindings(self._detail.version.version_id))

    def action_step(self, delta: int) -> None:
        detail = self._detail
        if detail is None:
            return
        position = detail.position + delta
        if not 0 <= position < len(detail.siblings):
            edge = "first" if delta < 0 else "latest"
            self.notify(f"{detail.version.ref} is the {edge} version", timeout=2, markup=False)
            return
        self.version_id = detail.siblings[position]
        self.checks_table.loading = True
        self._load(self.source, self.version_id, None)

    def action_show_tab(self, tab: str) -> None:
        self.tabs.active = tab
        if tab == "findings":
            self.checks_table.focus()
        else:
            self.tabs.query_one(f"#{tab} ScrollPane", ScrollPane).focus()


# -- pure renderers (tested without an app) ------------------------------------------------
def info_text(detail: VersionDetail) -> Text:
    version = detail.version
    text = Text()
    text.append(version.ref, style="bold")
    text.append(f"  ·  sha256 {short_hash(version.sha256)}", style="")
    text.append(f"  ·  version {detail.position + 1} of {len(detail.siblings)}", style="dim")
    text.append("\n")
    text.append(
        f"{format_count(version.rows_total)} rows, {format_count(version.rows_valid)} valid"
    )
    text.append("  ·  ")
    text.append(f"{version.errors:,} errors", style="bold red" if version.errors else "dim")
    text.append("  ·  ")
    text.append(f"{version.warnings:,} warnings", style="yellow" if version.warnings else "dim")
    text.append(f"  ·  {format_when(version.created_at)}", style="dim")
    text.append("\n")
    text.append(
        f"source {display_path(version.source_path)} ({version.source_format})", style="dim"
    )
    text.append("\n")
    text.append(
        f"tokens {version.token_counting}  ·  max_seq_len {version.max_seq_len:,}", style="dim"
    )
    return text


def histogram_rows(
    histogram: Sequence[Mapping[str, Any]], max_seq_len: int
) -> list[tuple[str, int]]:
    """Buckets as (label, count), up to the last non-empty one or the one holding max_seq_len."""
    rows = [(str(bucket.get("label", "?")), int(bucket.get("count", 0))) for bucket in histogram]
    keep = max((index + 1 for index, (_, count) in enumerate(rows) if count), default=0)
    for index, bucket in enumerate(histogram):
        high = bucket.get("high")
        if high is None or int(high) >= max_seq_len:
            keep = max(keep, index + 1)  # so the reader sees where the limit falls
            break
    return rows[:keep]


def _stats_row(name: str, stats: Mapping[str, Any]) -> list[str]:
    keys = ("min", "p50", "mean", "p90", "p99", "max")
    return [name, *(format_count(round(float(stats.get(key, 0)), 1)) for key in keys)]


def token_stats(version: VersionRecord) -> RenderableType:
    tokens = version.summary.get("tokens", {})
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    table.add_column("tokens per row")
    for key in ("min", "p50", "mean", "p90", "p99", "max"):
        table.add_column(key, justify="right")
    table.add_row(*_stats_row("total", tokens.get("total", {})))
    table.add_row(*_stats_row("assistant", tokens.get("assistant", {})))
    counting = Text.assemble(("counting: ", "dim"), version.token_counting)
    return Group(counting, table, Text(""))


def shape_stats(summary: Mapping[str, Any]) -> RenderableType:
    turns = summary.get("turns", {})
    parsed = int(summary.get("parsed_rows", turns.get("count", 0)) or 0)
    missing_share = float(summary.get("missing_system_share", 0.0))
    text = Text()
    text.append("messages per row  ", style="bold")
    text.append(
        "  ".join(
            f"{key} {format_count(round(float(turns.get(key, 0)), 1))}"
            for key in ("min", "p50", "mean", "max")
        )
    )
    text.append("\n")
    text.append("no system prompt  ", style="bold")
    text.append(f"{missing_share * 100:.1f}% of rows", style="yellow" if missing_share else "")
    if parsed:
        text.append(f" ({round(missing_share * parsed):,} of {parsed:,})", style="dim")
    text.append("\n")
    text.append("with tool calls   ", style="bold")
    tool_rows = int(summary.get("rows_with_tool_calls", 0))
    text.append(
        f"{tool_rows:,} row{'s' if tool_rows != 1 else ''} ({format_share(tool_rows, parsed)})"
    )
    text.append("\n")
    return text


def counter_rows(counter: Mapping[str, Any]) -> list[tuple[str, int]]:
    return sorted(((str(k), int(v)) for k, v in counter.items()), key=lambda kv: (-kv[1], kv[0]))


def splits_panel(version: VersionRecord, splits: Sequence[SplitRecord]) -> RenderableType:
    if not splits:
        return Text.assemble(
            ("No splits yet.\n\n", "bold"),
            "Make a leak-free train/val/test split from the shell:\n\n",
            (f"    ftod data split {version.ref} --val 0.1 --test 0.1 --seed 1", "bold green"),
        )
    parts: list[RenderableType] = []
    for split in reversed(splits):  # the newest split plan is the one exports use
        manifest = split.manifest
        heading = Text()
        heading.append(f"split #{split.split_id}", style="bold")
        heading.append(
            f"  seed {split.seed}  ·  val {split.val_fraction:g}  ·  test {split.test_fraction:g}"
        )
        heading.append(f"  ·  {format_when(split.created_at)}", style="dim")
        heading.append("\n")
        heading.append(
            f"group by {split.group_by or '–'}  ·  stratify {split.stratify or '–'}", style="dim"
        )
        table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
        table.add_column("split")
        table.add_column("rows", justify="right")
        table.add_column("share", justify="right")
        table.add_column("sha256")
        per_split = manifest.get("splits", {})
        total = sum(int(v.get("rows", 0)) for v in per_split.values())
        for name in ("train", "val", "test"):
            entry = per_split.get(name, {})
            rows = int(entry.get("rows", 0))
            table.add_row(
                name,
                format_count(rows),
                format_share(rows, total),
                short_hash(str(entry.get("sha256", ""))),
            )
        leaks = int(manifest.get("leakage_findings", 0))
        leak_text = Text("leakage findings: ", style="bold")
        leak_text.append(f"{leaks:,}", style="bold red" if leaks else "green")
        if leaks:
            leak_text.append("  (see the 'leakage' check in Findings)", style="dim")
        parts += [heading, table, leak_text, Text("")]
    return Group(*parts)


def audit_panel(audit: KnowledgeAudit | None) -> RenderableType:
    """The knowledge audit: share of turns with volatile facts, by kind, top facts, drift."""
    if audit is None:
        return Text("The knowledge audit could not be computed.", style="dim")
    head = Text()
    head.append("volatile facts  ", style="bold")
    share_style = "yellow" if audit.turns_with_volatile_facts else "green"
    head.append(f"{audit.share:.1%}", style=share_style)
    head.append(
        f" of assistant turns ({audit.turns_with_volatile_facts:,} of {audit.assistant_turns:,})\n",
        style="dim",
    )
    kinds = [f"{kind} {count:,}" for kind, count in audit.by_kind.items() if count]
    head.append("by kind         ", style="bold")
    head.append("  ".join(kinds) if kinds else "none")
    if not audit.turns_with_volatile_facts:
        head.append("\n\nNothing in the answers would go stale once trained in.", style="green")
        return head
    head.append("\n")
    top = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    top.add_column("most repeated")
    top.add_column("kind")
    top.add_column("turns", justify="right")
    for kind, value, count in audit.top_facts:
        top.add_row(Text(value, overflow="ellipsis", no_wrap=True), kind, f"{count:,}")
    parts: list[RenderableType] = [head, top, Text("")]
    if audit.drift:
        drift = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
        drift.add_column("drifted: topic (kind)")
        drift.add_column("value")
        drift.add_column("first → last date")
        drift.add_column("turns", justify="right")
        for entry in audit.drift[:AUDIT_DRIFT_ROWS]:
            # One line per value, the topic on the first: a value is short, 80 columns hold it.
            for position, item in enumerate(entry["values"][:3]):
                topic = f"{entry['topic']} ({entry['kind']})" if position == 0 else ""
                drift.add_row(
                    Text(topic, overflow="ellipsis", no_wrap=True),
                    Text(str(item["value"]), overflow="ellipsis", no_wrap=True),
                    f"{item['first_date']} → {item['last_date']}",
                    f"{item['count']:,}",
                )
        parts.append(drift)
        if len(audit.drift) > AUDIT_DRIFT_ROWS:
            parts.append(
                Text(f"… {len(audit.drift) - AUDIT_DRIFT_ROWS} more drifted facts", style="dim")
            )
    else:
        parts.append(Text("drift: none (no value changed across the rows' dates)", style="dim"))
    parts.append(
        Text(
            "Move these facts into retrieval or the prompt before a fine-tune freezes them.",
            style="dim",
        )
    )
    return Group(*parts)
