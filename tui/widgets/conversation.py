"""A conversation rendered by role, with PII spans highlighted and tool calls set apart.

The widget receives a prepared `ConversationSide` (built in a worker thread from a stored
example); it never reads the store or parses rows itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

PII_STYLE = "bold black on yellow"
TOOL_CALL_STYLE = "italic #e5c07b"

ROLE_CLASS: dict[str, str] = {
    "system": "-system",
    "developer": "-system",
    "user": "-user",
    "assistant": "-assistant",
    "tool": "-tool",
    "function": "-tool",
}


@dataclass(frozen=True, slots=True)
class Highlight:
    """A PII span inside one message's plain text (offsets as core.conversation computes them)."""

    message_index: int
    start: int
    end: int
    detail: str


@dataclass(frozen=True, slots=True)
class ConversationSide:
    """Everything one side of the example screen shows, ready to render."""

    title: str
    messages: tuple[dict[str, Any], ...] = ()
    texts: tuple[str, ...] = ()
    # Length of each message's own content within `texts[i]`; None when it has no tool calls.
    content_lengths: tuple[int | None, ...] = ()
    highlights: tuple[Highlight, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()
    raw: str | None = None  # set for rows that did not parse into a conversation
    reason: str | None = None  # why the row is invalid, shown above the raw line
    unavailable: str | None = None  # the other side cannot be shown, and why
    extra: tuple[str, ...] = field(default=())  # notes under the conversation


def highlights_from_spans(spans: Sequence[dict[str, Any]]) -> tuple[Highlight, ...]:
    result = []
    for span in spans:
        try:
            result.append(
                Highlight(
                    int(span["message_index"]),
                    int(span["start"]),
                    int(span["end"]),
                    str(span.get("detail") or span.get("kind") or "personal data"),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue  # a malformed span is not worth failing the screen for
    return tuple(result)


def message_body(text: str, content_length: int | None, highlights: Sequence[Highlight]) -> Text:
    """The message text with PII highlighted; tool-call lines (after the content) marked '→'."""
    body = Text(text)
    for highlight in highlights:
        body.stylize(PII_STYLE, max(0, highlight.start), min(len(text), highlight.end))
    if content_length is None:
        return body
    calls_start = content_length + 1 if content_length else 0
    rendered = Text()
    if content_length:
        rendered.append_text(body[:content_length])
        rendered.append("\n")
    calls = body[calls_start:]
    for index, line in enumerate(calls.split("\n")):
        if index:
            rendered.append("\n")
        rendered.append("→ call ", style="bold #e5c07b")
        line.stylize(TOOL_CALL_STYLE)
        rendered.append_text(line)
    return rendered


def message_header(index: int, message: dict[str, Any]) -> Text:
    role = str(message.get("role", "?"))
    header = Text.assemble((role, "bold"), (f"  #{index + 1}", "dim"))
    name = message.get("name")
    if isinstance(name, str) and name:
        header.append(f"  {name}", style="dim")
    call_id = message.get("tool_call_id")
    if isinstance(call_id, str) and call_id:
        header.append(f"  answers {call_id}", style="dim")
    if message.get("weight") == 0:
        header.append("  not trained (weight 0)", style="bold magenta")
    return header


def raw_text(raw: str, reason: str | None) -> Text:
    text = Text()
    if reason:
        text.append("invalid row: ", style="bold red")
        text.append(reason + "\n\n")
    text.append(raw or "(empty line)", style="dim" if not raw else "")
    return text


class MessageView(Static):
    """One turn: role header, then the text; styled per role by the app stylesheet."""


class ConversationView(Vertical):
    """A side of the example screen: title, turns by role, metadata, notes."""

    def __init__(self, side: ConversationSide, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes="conversation")
        self.side = side

    def compose(self) -> ComposeResult:
        side = self.side
        yield Static(Text(side.title, style="bold"), classes="conversation-title")
        if side.metadata:
            meta = Text()
            for position, (key, value) in enumerate(side.metadata):
                if position:
                    meta.append(" · ", style="dim")
                meta.append(f"{key} ", style="dim")
                meta.append(value)
            yield Static(meta, classes="conversation-meta")
        if side.unavailable is not None:
            yield Static(Text(side.unavailable, style="italic"), classes="unavailable")
            return
        if side.raw is not None:
            yield Static(raw_text(side.raw, side.reason), classes="raw-row")
            return
        if side.reason:
            yield Static(
                Text.assemble(("invalid row: ", "bold red"), side.reason), classes="reason"
            )
        for index, message in enumerate(side.messages):
            role_class = ROLE_CLASS.get(str(message.get("role")), "-other")
            highlights = [h for h in side.highlights if h.message_index == index]
            text = side.texts[index] if index < len(side.texts) else _fallback_text(message)
            length = side.content_lengths[index] if index < len(side.content_lengths) else None
            body = message_body(text, length, highlights)
            flagged = " -flagged" if highlights else ""
            yield MessageView(
                Text.assemble(message_header(index, message), "\n", body),
                classes=f"message {role_class}{flagged}",
            )
        if side.highlights:
            notes = Text("personal data: ", style="bold")
            notes.append(
                ", ".join(f"{h.detail} (message {h.message_index + 1})" for h in side.highlights),
                style=PII_STYLE,
            )
            yield Static(notes, classes="conversation-note")
        for note in side.extra:
            yield Static(Text(note, style="dim"), classes="conversation-note")


def _fallback_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
