"""empty_content: a turn with no text, no tool call and no media."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.checks.base import FormatCheck, RowProblem, has_media, has_tool_calls

if TYPE_CHECKING:
    from core.checks.base import Conversation


def find(conversation: Conversation) -> RowProblem | None:
    empty_turns = [
        f"{index} ({message['role']})"
        for index, (message, text) in enumerate(
            zip(conversation.messages, conversation.texts, strict=True), start=1
        )
        if not text.strip() and not has_tool_calls(message) and not has_media(message)
    ]
    if not empty_turns:
        return None
    return RowProblem(
        "empty_content",
        "error",
        f"empty or whitespace-only content in message {', '.join(empty_turns)}",
    )


CHECK = FormatCheck(
    "empty_content",
    ("error",),
    "empty or whitespace-only turns (an assistant turn with only `tool_calls` is fine)",
    find,
)
