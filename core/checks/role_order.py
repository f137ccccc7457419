"""role_order: turns in an order a chat template or a trainer cannot use."""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

from core.checks.base import SYSTEM_ROLES, TOOL_ROLES, FormatCheck, RowProblem, has_tool_calls

if TYPE_CHECKING:
    from core.checks.base import Conversation


def find(conversation: Conversation) -> RowProblem | None:
    messages = conversation.messages
    roles = [message["role"] for message in messages]
    order_problems: list[str] = []
    for index, role in enumerate(roles):
        if role in SYSTEM_ROLES and index > 0 and roles[index - 1] not in SYSTEM_ROLES:
            order_problems.append(f"system message at position {index + 1} is not first")
            break
    dialog = [(i, role) for i, role in enumerate(roles) if role not in SYSTEM_ROLES]
    if dialog and dialog[0][1] == "assistant":
        order_problems.append(
            f"the conversation opens with an assistant turn (message {dialog[0][0] + 1})"
        )
    elif dialog and dialog[0][1] in TOOL_ROLES:
        order_problems.append(
            f"the conversation opens with a tool message (message {dialog[0][0] + 1})"
        )
    open_call_ids: set[str] = set()
    calls_pending = False
    for (prev_index, prev_role), (index, role) in pairwise(dialog):
        if role == "user" and prev_role == "user":
            order_problems.append(
                f"two user turns in a row (messages {prev_index + 1} and {index + 1})"
            )
            break
        if (
            role == "assistant"
            and prev_role == "assistant"
            and not has_tool_calls(messages[prev_index])
        ):
            order_problems.append(
                f"two assistant turns in a row (messages {prev_index + 1} and {index + 1})"
            )
            break
    for index, role in dialog:
        message = messages[index]
        if role == "assistant" and has_tool_calls(message):
            calls_pending = True
            open_call_ids |= {
                call["id"]
                for call in message.get("tool_calls") or ()
                if isinstance(call, dict) and isinstance(call.get("id"), str)
            }
        elif role in TOOL_ROLES:
            if not calls_pending:
                order_problems.append(
                    f"tool message {index + 1} does not follow an assistant tool call"
                )
                break
            call_id = message.get("tool_call_id")
            if isinstance(call_id, str) and open_call_ids and call_id not in open_call_ids:
                order_problems.append(
                    f"tool message {index + 1} answers tool_call_id {call_id!r}, "
                    "which no earlier call made"
                )
                break
        elif role == "user":
            calls_pending = False
            open_call_ids = set()
    has_assistant = "assistant" in roles
    if has_assistant and dialog and dialog[-1][1] != "assistant":
        last_index, last_role = dialog[-1]
        order_problems.append(
            f"the conversation ends on a {last_role} turn (message {last_index + 1}), "
            "not an assistant reply"
        )
    # Ending on an assistant tool call is fine: it is how function-calling examples
    # teach the model to call a tool (the tool's reply is not part of the target).
    if not order_problems:
        return None
    return RowProblem("role_order", "error", "; ".join(order_problems))


CHECK = FormatCheck(
    "role_order",
    ("error",),
    "system not first, two user/assistant turns in a row, assistant first, ending on a user "
    "or tool turn, a tool message without a preceding call",
    find,
)
