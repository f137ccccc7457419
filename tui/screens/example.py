"""The rows behind one finding: a conversation, or two side by side for pairwise findings.

Duplicates and contradictions list every line of their group (all in this version); a
leakage finding names its other side in `other_path`/`other_lines`, either a split of this
version ("split:train") or an external file, read again from disk if it still exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Footer, Header, Static

from core.checks.registry import ROW_FORMAT_CHECK_IDS as FORMAT_CHECKS
from core.conversation import parse_row
from core.source import SourceRow, iter_jsonl, iter_parquet, sniff_format
from store.datasets import DatasetRepository, ExampleRecord, FindingRecord
from store.errors import FtodError
from tui.formatting import display_path, format_lines, severity_style
from tui.screens.base import DataSource, FtodScreen, error_text
from tui.widgets.conversation import (
    ConversationSide,
    ConversationView,
    MessageView,
    highlights_from_spans,
)
from tui.widgets.scroll import ScrollPane

SPLIT_PREFIX = "split:"


@dataclass(frozen=True, slots=True)
class OtherSide:
    """Where the right-hand side's rows come from: this version, or an external file."""

    lines: tuple[int, ...]
    label: str  # e.g. "duplicate", "split:train", "other.jsonl"
    external_path: str | None = None


def other_side(finding: FindingRecord) -> OtherSide | None:
    """The rows a pairwise finding compares its first line with; None for single-row findings."""
    if finding.other_path is not None:
        if finding.other_path.startswith(SPLIT_PREFIX):
            return OtherSide(finding.other_lines, finding.other_path)
        return OtherSide(
            finding.other_lines, display_path(finding.other_path), external_path=finding.other_path
        )
    if len(finding.lines) >= 2:
        return OtherSide(finding.lines[1:], finding.check.replace("_", " "))
    return None


# -- preparing a side (runs in the worker thread) -----------------------------------------
def _content_lengths(
    messages: list[dict[str, Any]], texts: Sequence[str]
) -> tuple[int | None, ...]:
    """For messages with tool calls, the length of their own content inside `texts[i]`."""
    if not any(message.get("tool_calls") for message in messages):
        return tuple(None for _ in messages)
    without_calls = [{**m, "content": m.get("content"), "tool_calls": None} for m in messages]
    conversation, _ = parse_row({"messages": without_calls})
    if conversation is None or len(conversation.texts) != len(texts):
        return tuple(None for _ in messages)
    return tuple(
        len(plain) if message.get("tool_calls") else None
        for message, plain in zip(messages, conversation.texts, strict=True)
    )


def _metadata(
    label: str | None, slice_name: str | None, tokens: int | None, assistant: int | None
) -> tuple[tuple[str, str], ...]:
    items: list[tuple[str, str]] = []
    if label is not None:
        items.append(("label", label))
    if slice_name is not None:
        items.append(("slice", slice_name))
    if tokens is not None:
        shown = f"{tokens:,}" + (f" ({assistant:,} assistant)" if assistant is not None else "")
        items.append(("tokens", shown))
    return tuple(items)


def conversation_side(
    title: str,
    messages: list[dict[str, Any]] | None,
    *,
    raw: str,
    metadata: tuple[tuple[str, str], ...],
    spans: Sequence[dict[str, Any]] = (),
    reason: str | None = None,
) -> ConversationSide:
    if messages is None:
        return ConversationSide(title, metadata=metadata, raw=raw, reason=reason)
    conversation, problems = parse_row({"messages": messages})
    if conversation is None:
        why = reason or "; ".join(problem.message for problem in problems)
        return ConversationSide(title, metadata=metadata, raw=raw, reason=why)
    return ConversationSide(
        title,
        messages=tuple(conversation.messages),
        texts=tuple(conversation.texts),
        content_lengths=_content_lengths(conversation.messages, conversation.texts),
        highlights=highlights_from_spans(spans),
        metadata=metadata,
        reason=reason,
    )


def side_from_example(
    repository: DatasetRepository,
    version_id: int,
    example: ExampleRecord,
    title: str,
    spans: Sequence[dict[str, Any]] = (),
) -> ConversationSide:
    reason = None
    if not example.valid:
        problems = [
            f"{finding.check}: {finding.message}"
            for finding in repository.findings_page(version_id, line=example.line, limit=20)
            if finding.check in FORMAT_CHECKS and finding.severity == "error"
        ]
        reason = "; ".join(problems) or "this row failed a format check"
    metadata = _metadata(
        example.label, example.slice, example.total_tokens, example.assistant_tokens
    )
    return conversation_side(
        title, example.messages, raw=example.raw, metadata=metadata, spans=spans, reason=reason
    )


def read_source_line(path: Path, line: int) -> SourceRow | None:
    """Line `line` of a JSONL file (or row of a Parquet file), streamed; None past the end."""
    rows = iter_parquet(path) if sniff_format(path) == "parquet" else iter_jsonl(path)
    for row in rows:
        if row.line == line:
            return row
        if row.line > line:
            return None
    return None


def side_from_file(path_text: str, line: int, title: str) -> ConversationSide:
    path = Path(path_text)
    if not path.is_file():
        return ConversationSide(
            title, unavailable=f"Not available: {display_path(path)} no longer exists."
        )
    try:
        row = read_source_line(path, line)
    except FtodError as error:
        return ConversationSide(title, unavailable=f"Not available: {error.message}")
    if row is None:
        return ConversationSide(
            title, unavailable=f"Not available: {display_path(path)} has no line {line} any more."
        )
    metadata: tuple[tuple[str, str], ...] = ()
    if row.error is not None:
        return ConversationSide(title, metadata=metadata, raw=row.raw, reason=row.error)
    conversation, problems = parse_row(row.value)
    if conversation is None:
        reason = "; ".join(problem.message for problem in problems)
        return ConversationSide(title, metadata=metadata, raw=row.raw, reason=reason)
    label = conversation.metadata.get("label")
    slice_name = conversation.metadata.get("slice")
    metadata = _metadata(
        label if isinstance(label, str) else None,
        slice_name if isinstance(slice_name, str) else None,
        None,
        None,
    )
    return conversation_side(title, conversation.messages, raw=row.raw, metadata=metadata)


# -- the screen ---------------------------------------------------------------------------
class ExampleScreen(FtodScreen):
    """One finding's rows; `n`/`p` cycle the right side through the other members."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "n",
            "cycle(1)",
            "Next member",
            id="example.next",
            tooltip="Show the next other row of this group",
        ),
        Binding(
            "p",
            "cycle(-1)",
            "Prev member",
            id="example.previous",
            tooltip="Show the previous other row of this group",
        ),
    ]

    @dataclass
    class ExampleLoaded(Message):
        """A side is ready; `left` is None when only the right side changed."""

        left: ConversationSide | None
        right: ConversationSide | None
        right_index: int

    def __init__(self, version_id: int, finding: FindingRecord) -> None:
        super().__init__()
        self.version_id = version_id
        self.finding = finding
        self.other = other_side(finding)
        self._right_index = 0

    # -- typed accessors -----------------------------------------------------------------
    @property
    def left_pane(self) -> ScrollPane:
        return self.query_one("#left-pane", ScrollPane)

    @property
    def right_pane(self) -> ScrollPane:
        return self.query_one("#right-pane", ScrollPane)

    @property
    def is_pairwise(self) -> bool:
        return self.other is not None

    @property
    def right_index(self) -> int:
        return self._right_index

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(self._info_text(), id="example-info", classes="info-panel")
        with Horizontal(id="example-sides"):
            yield ScrollPane(id="left-pane", classes="side")
            yield ScrollPane(id="right-pane", classes="side")
        yield Footer()

    def _info_text(self) -> Text:
        finding = self.finding
        text = Text()
        text.append(finding.check, style="bold")
        text.append("  ")
        text.append(finding.severity, style=severity_style(finding.severity))
        text.append(
            f"  ·  line{'s' if len(finding.lines) > 1 else ''} {format_lines(finding.lines, 6)}"
        )
        if finding.other_path is not None:
            text.append(f"  ·  other {finding.other_path} {format_lines(finding.other_lines, 6)}")
        text.append("\n")
        text.append(finding.message)
        return text

    def on_mount(self) -> None:
        self.sub_title = f"finding: {self.finding.check}"
        self.right_pane.display = self.is_pairwise
        self.left_pane.loading = True
        self._load(self.source, with_left=True, right_index=0)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cycle":
            # Shown only when there is more than one other row to cycle through.
            return self.other is not None and len(self.other.lines) > 1
        return super().check_action(action, parameters)

    # -- loading -------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="example")
    def _load(self, source: DataSource, *, with_left: bool, right_index: int) -> None:
        repository = source.repository()
        finding = self.finding
        left = None
        if with_left:
            first = finding.lines[0]
            example = repository.example(self.version_id, first)
            left = side_from_example(
                repository, self.version_id, example, f"line {first}", finding.spans
            )
        right = None
        other = self.other
        if other is not None and other.lines:
            line = other.lines[right_index]
            count = f" ({right_index + 1} of {len(other.lines)})" if len(other.lines) > 1 else ""
            title = f"{other.label} · line {line}{count}"
            if other.external_path is not None:
                right = side_from_file(other.external_path, line, title)
            else:
                right = side_from_example(
                    repository, self.version_id, repository.example(self.version_id, line), title
                )
        elif other is not None:
            right = ConversationSide(other.label, unavailable="The finding names no other row.")
        self.post_message(self.ExampleLoaded(left, right, right_index))

    @on(ExampleLoaded)
    async def _show_sides(self, message: ExampleLoaded) -> None:
        if message.left is not None:
            self.left_pane.loading = False
            await self.left_pane.remove_children()
            await self.left_pane.mount(ConversationView(message.left, id="left-conversation"))
            self.left_pane.focus()
            flagged = self.left_pane.query(".-flagged")
            if flagged:
                # Bring the first message with personal data into view (if it is below).
                first = flagged.first(MessageView)
                self.call_after_refresh(self.left_pane.scroll_to_widget, first, animate=False)
        if message.right is not None:
            self._right_index = message.right_index
            await self.right_pane.remove_children()
            await self.right_pane.mount(ConversationView(message.right, id="right-conversation"))
            self.right_pane.scroll_home(animate=False)

    def load_failed(self, error: BaseException | None) -> None:
        self.left_pane.loading = False
        self.query_one("#example-info", Static).update(
            Text.assemble(("Could not read the rows: ", "bold red"), error_text(error))
        )

    def action_cycle(self, step: int) -> None:
        other = self.other
        if other is None or len(other.lines) < 2:
            return
        index = (self._right_index + step) % len(other.lines)
        self._load(self.source, with_left=False, right_index=index)
