"""no_assistant: nothing for the model to learn from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.checks.base import FormatCheck, RowProblem

if TYPE_CHECKING:
    from core.checks.base import Conversation


def find(conversation: Conversation) -> RowProblem | None:
    assistant_turns = [m for m in conversation.messages if m["role"] == "assistant"]
    if not assistant_turns:
        return RowProblem(
            "no_assistant", "error", "no assistant turn: nothing for the model to learn"
        )
    if all(message.get("weight") == 0 for message in assistant_turns):
        return RowProblem(
            "no_assistant",
            "warning",
            "every assistant turn has weight 0: the row has no loss-bearing tokens",
        )
    return None


CHECK = FormatCheck(
    "no_assistant",
    ("error", "warning"),
    "no assistant turn (warning when every assistant turn has `weight: 0`)",
    find,
)
