"""Turning one parsed row into a normalised conversation, and the per-row format checks.

Accepted shapes: OpenAI chat (`messages`, optional `metadata`, `tools`), prompt/completion
with strings, and TRL's conversational prompt/completion (lists of messages).
"""

from __future__ import annotations

import json
from typing import Any

from core.checks.base import KNOWN_ROLES, TEXT_PART_TYPES
from core.checks.base import Conversation as Conversation
from core.checks.base import RowProblem as RowProblem
from core.checks.registry import FORMAT_CHECKS

_PLAIN_ROLES = frozenset({"system", "developer", "user", "assistant"})
_SIMPLE_SHAPES = frozenset(
    {("user", "assistant"), ("system", "user", "assistant"), ("developer", "user", "assistant")}
)


def describe_json_type(value: object) -> str:
    """What a JSON value is, in the words of an error message ("a list", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_describe = describe_json_type


def _content_text(content: object, where: str) -> tuple[str | None, str | None]:
    """Plain text of a message content, or an error message."""
    if content is None:
        return "", None
    if isinstance(content, str):
        return content, None
    if isinstance(content, list):
        pieces: list[str] = []
        for part_index, part in enumerate(content, start=1):
            if isinstance(part, str):
                pieces.append(part)
                continue
            if not isinstance(part, dict):
                return (
                    None,
                    f"{where}: content part {part_index} is {_describe(part)}, not an object",
                )
            part_type = part.get("type", "text")
            if part_type in TEXT_PART_TYPES:
                text = part.get("text")
                if not isinstance(text, str):
                    return None, f"{where}: content part {part_index} has no string 'text'"
                pieces.append(text)
            # Non-text parts (images, audio) carry no text to check; they are allowed.
        return "".join(pieces), None
    return None, f"{where}: content is {_describe(content)}; expected a string or a list of parts"


def _tool_calls_text(tool_calls: list[Any]) -> str:
    rendered = []
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            rendered.append(f"{function.get('name', '')}({function.get('arguments', '')})")
    return "\n".join(rendered)


def _check_tool_calls(tool_calls: object, where: str) -> str | None:
    if not isinstance(tool_calls, list):
        return f"{where}: 'tool_calls' is {_describe(tool_calls)}, not a list"
    for call_index, call in enumerate(tool_calls, start=1):
        if not isinstance(call, dict):
            return f"{where}: tool call {call_index} is {_describe(call)}, not an object"
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            return f"{where}: tool call {call_index} has no function name"
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str | dict):
            return f"{where}: tool call {call_index} arguments are {_describe(arguments)}"
    return None


def _messages_from_prompt_completion(row: dict[str, Any]) -> tuple[object, str | None]:
    prompt, completion = row.get("prompt"), row.get("completion")
    if isinstance(prompt, str) and isinstance(completion, str):
        messages: list[object] = []
        system = row.get("system")
        if isinstance(system, str) and system.strip():
            messages.append({"role": "system", "content": system})
        messages += [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": completion},
        ]
        return messages, None
    if isinstance(prompt, list) and isinstance(completion, list):
        return [*prompt, *completion], None
    return None, (
        f"'prompt' is {_describe(prompt)} and 'completion' is {_describe(completion)}; "
        "expected two strings or two lists of messages"
    )


# ShareGPT (LLaMA-Factory, axolotl, FastChat) speaker names and their chat roles.
SHAREGPT_ROLES: dict[str, str] = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "model": "assistant",
    "bard": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
    "function": "tool",
}


def _messages_from_sharegpt(row: dict[str, Any]) -> tuple[object, str | None]:
    turns = row.get("conversations")
    if not isinstance(turns, list):
        return None, f"'conversations' is {_describe(turns)}, not a list"
    messages: list[object] = []
    system = row.get("system")
    if isinstance(system, str) and system.strip():
        messages.append({"role": "system", "content": system})
    call_count = 0
    for index, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            return None, f"conversation turn {index} is {_describe(turn)}, not an object"
        if "role" in turn:  # OpenAI-style messages under a ShareGPT key
            messages.append(turn)
            continue
        speaker = turn.get("from")
        role = SHAREGPT_ROLES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            shown = json.dumps(speaker, ensure_ascii=False)[:40]
            return None, (
                f"conversation turn {index} has unknown speaker 'from': {shown}; "
                "expected human, gpt, system, function_call or observation"
            )
        value = turn.get("value")
        if speaker == "function_call" and isinstance(value, str):
            try:
                call = json.loads(value)
            except ValueError:
                call = None
            if isinstance(call, dict) and isinstance(call.get("name"), str):
                call_count += 1
                arguments = call.get("arguments", {})
                messages.append(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": f"call_{call_count}",
                                "type": "function",
                                "function": {
                                    "name": call["name"],
                                    "arguments": arguments
                                    if isinstance(arguments, str)
                                    else json.dumps(arguments, ensure_ascii=False),
                                },
                            }
                        ],
                    }
                )
                continue
        message: dict[str, Any] = {"role": role, "content": value}
        if role == "tool" and call_count:
            message["tool_call_id"] = f"call_{call_count}"
        messages.append(message)
    return messages, None


def _messages_from_alpaca(row: dict[str, Any]) -> tuple[object, str | None]:
    instruction, extra, output = row.get("instruction"), row.get("input", ""), row.get("output")
    if not isinstance(instruction, str) or not isinstance(output, str):
        return None, (
            f"'instruction' is {_describe(instruction)} and 'output' is {_describe(output)}; "
            "expected two strings"
        )
    if extra is not None and not isinstance(extra, str):
        return None, f"'input' is {_describe(extra)}, not a string"
    messages: list[object] = []
    system = row.get("system")
    if isinstance(system, str) and system.strip():
        messages.append({"role": "system", "content": system})
    history = row.get("history") or []
    if not isinstance(history, list):
        return None, f"'history' is {_describe(history)}, not a list of [question, answer]"
    for index, pair in enumerate(history, start=1):
        if not (isinstance(pair, list) and len(pair) == 2):
            return None, f"history entry {index} is not a [question, answer] pair"
        messages += [
            {"role": "user", "content": pair[0]},
            {"role": "assistant", "content": pair[1]},
        ]
    question = f"{instruction}\n\n{extra}" if extra else instruction
    messages += [{"role": "user", "content": question}, {"role": "assistant", "content": output}]
    return messages, None


def parse_row(row: object) -> tuple[Conversation | None, list[RowProblem]]:
    """Validate the structure of one row; on success return the normalised conversation."""
    if not isinstance(row, dict):
        return None, [
            RowProblem("invalid_schema", "error", f"the row is {_describe(row)}, not a JSON object")
        ]
    if "messages" in row:
        raw_messages: object = row["messages"]
    elif "prompt" in row or "completion" in row:
        raw_messages, problem = _messages_from_prompt_completion(row)
        if problem is not None:
            return None, [RowProblem("invalid_schema", "error", problem)]
    elif "conversations" in row:
        raw_messages, problem = _messages_from_sharegpt(row)
        if problem is not None:
            return None, [RowProblem("invalid_schema", "error", problem)]
    elif "instruction" in row and "output" in row:
        raw_messages, problem = _messages_from_alpaca(row)
        if problem is not None:
            return None, [RowProblem("invalid_schema", "error", problem)]
    else:
        keys = ", ".join(sorted(map(str, row))[:6]) or "none"
        return None, [
            RowProblem(
                "invalid_schema",
                "error",
                "no 'messages' field (nor prompt/completion, ShareGPT 'conversations' or "
                f"Alpaca instruction/output); keys present: {keys}",
            )
        ]
    if not isinstance(raw_messages, list):
        return None, [
            RowProblem(
                "invalid_schema", "error", f"'messages' is {_describe(raw_messages)}, not a list"
            )
        ]
    if not raw_messages:
        return None, [RowProblem("invalid_schema", "error", "'messages' is an empty list")]

    metadata = row.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return None, [
            RowProblem(
                "invalid_schema", "error", f"'metadata' is {_describe(metadata)}, not an object"
            )
        ]
    tools = row.get("tools")
    if tools is not None and not isinstance(tools, list):
        return None, [
            RowProblem("invalid_schema", "error", f"'tools' is {_describe(tools)}, not a list")
        ]

    messages: list[dict[str, Any]] = []
    texts: list[str] = []
    for index, message in enumerate(raw_messages, start=1):
        # Fast path for the common plain turn; everything else takes the full checks below.
        if (
            type(message) is dict
            and len(message) == 2
            and type(message.get("content")) is str
            and type(message.get("role")) is str
            and message["role"] in _PLAIN_ROLES
        ):
            messages.append(message)
            texts.append(message["content"])
            continue
        where = f"message {index}"
        if not isinstance(message, dict):
            return None, [
                RowProblem(
                    "invalid_schema", "error", f"{where} is {_describe(message)}, not an object"
                )
            ]
        role = message.get("role")
        if role is None:
            return None, [RowProblem("invalid_schema", "error", f"{where} has no 'role'")]
        if not isinstance(role, str) or role not in KNOWN_ROLES:
            shown = json.dumps(role, ensure_ascii=False)[:40]
            return None, [
                RowProblem(
                    "invalid_schema",
                    "error",
                    f"{where} has unknown role {shown}; expected system, user, assistant or tool",
                )
            ]
        where = f"message {index} ({role})"
        calls_instead = "tool_calls" in message or "function_call" in message
        if "content" not in message and not (role == "assistant" and calls_instead):
            return None, [RowProblem("invalid_schema", "error", f"{where} has no 'content'")]
        text, problem = _content_text(message.get("content"), where)
        if problem is not None or text is None:
            return None, [RowProblem("invalid_schema", "error", problem or where)]
        if "tool_calls" in message and message["tool_calls"] is not None:
            if role != "assistant":
                return None, [
                    RowProblem(
                        "invalid_schema",
                        "error",
                        f"{where} has 'tool_calls'; only assistant turns may",
                    )
                ]
            problem = _check_tool_calls(message["tool_calls"], where)
            if problem is not None:
                return None, [RowProblem("invalid_schema", "error", problem)]
            calls_text = _tool_calls_text(message["tool_calls"])
            text = f"{text}\n{calls_text}" if text else calls_text
        legacy_call = message.get("function_call")
        if legacy_call is not None:
            if role != "assistant" or not isinstance(legacy_call, dict):
                return None, [
                    RowProblem(
                        "invalid_schema",
                        "error",
                        f"{where}: 'function_call' must be an object on an assistant turn",
                    )
                ]
            rendered = _tool_calls_text([{"function": legacy_call}])
            text = f"{text}\n{rendered}" if text else rendered
        weight = message.get("weight")
        if weight is not None and (isinstance(weight, bool) or weight not in (0, 1)):
            return None, [
                RowProblem(
                    "invalid_schema", "error", f"{where} has weight {weight!r}; expected 0 or 1"
                )
            ]
        if weight is not None and role != "assistant":
            return None, [
                RowProblem(
                    "invalid_schema",
                    "error",
                    f"{where} has a weight; only assistant turns are weighted",
                )
            ]
        for key in ("tool_call_id", "name"):
            if key in message and message[key] is not None and not isinstance(message[key], str):
                return None, [
                    RowProblem(
                        "invalid_schema",
                        "error",
                        f"{where}: '{key}' is {_describe(message[key])}, not a string",
                    )
                ]
        messages.append(message)
        texts.append(text)

    conversation = Conversation(messages, texts, metadata or {}, tools)
    return conversation, content_and_order_problems(conversation)


def content_and_order_problems(conversation: Conversation) -> list[RowProblem]:
    """The registered format checks (core/checks/registry.py) of a structurally valid row."""
    messages = conversation.messages
    # Fast path: most rows are ([system,] user, assistant) with text in every turn, which
    # every format check passes; a new format check that can fail such a row belongs in
    # core/checks as a RowCheck instead.
    if (
        len(messages) in (2, 3)
        and tuple(message["role"] for message in messages) in _SIMPLE_SHAPES
        and "weight" not in messages[-1]
        and all(text.strip() for text in conversation.texts)
    ):
        return []
    problems: list[RowProblem] = []
    for check in FORMAT_CHECKS:
        problem = check.find(conversation)
        if problem is not None:
            problems.append(problem)
    return problems
