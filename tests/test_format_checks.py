"""Per-row format checks: each with positive cases and valid look-alikes that must pass."""

from __future__ import annotations

from typing import Any

import pytest

from core.conversation import parse_row

S = {"role": "system", "content": "Be brief."}
U = {"role": "user", "content": "Where is order A-10293?"}
A = {"role": "assistant", "content": "It ships tomorrow."}
CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "lookup_order", "arguments": '{"order_id": "A-10293"}'},
        }
    ],
}
TOOL = {
    "role": "tool",
    "tool_call_id": "call_1",
    "name": "lookup_order",
    "content": '{"status": "packed"}',
}


def checks_of(row: Any) -> list[str]:
    _, problems = parse_row(row)
    return [p.check for p in problems if p.severity == "error"]


VALID_ROWS = [
    {"messages": [S, U, A]},
    {"messages": [U, A]},
    {"messages": [S, U, CALL, TOOL, A]},
    {
        "messages": [
            S,
            U,
            {**A, "weight": 0},
            {"role": "user", "content": "and the other?"},
            {**A, "weight": 1},
        ]
    },
    {"messages": [S, U, A], "metadata": {"label": "shipping"}, "tools": [{"type": "function"}]},
    {"messages": [U, {"role": "assistant", "content": [{"type": "text", "text": "ok"}]}]},
    {"messages": [{"role": "developer", "content": "x"}, U, A]},
    {"prompt": "Translate 'cat' to French.", "completion": "chat"},
    {"prompt": [S, U], "completion": [A]},
    {"messages": [S, S, U, A]},  # two leading system messages are fine
    {
        "messages": [
            S,
            U,
            CALL,
            TOOL,
            CALL
            | {
                "tool_calls": [
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    }
                ]
            },
            {**TOOL, "tool_call_id": "call_2"},
            A,
        ]
    },
]


@pytest.mark.parametrize("row", VALID_ROWS)
def test_valid_rows_have_no_errors(row: Any) -> None:
    conversation, problems = parse_row(row)
    assert conversation is not None
    assert problems == []


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ([S, U, A], "not a JSON object"),
        ("text", "not a JSON object"),
        ({"text": "hi"}, "no 'messages'"),
        ({"messages": "hi"}, "is a string, not a list"),
        ({"messages": []}, "empty list"),
        ({"messages": [S, "hi"]}, "message 2 is a string"),
        ({"messages": [{"content": "hi"}, A]}, "has no 'role'"),
        ({"messages": [{"role": "bot", "content": "hi"}, A]}, "unknown role"),
        ({"messages": [{"role": 3, "content": "hi"}, A]}, "unknown role"),
        ({"messages": [{"role": "user", "content": 42}, A]}, "content is a number"),
        ({"messages": [{"role": "user", "content": {"a": 1}}, A]}, "content is an object"),
        ({"messages": [{"role": "user"}, A]}, "has no 'content'"),
        ({"messages": [U, {**A, "weight": 2}]}, "weight 2"),
        ({"messages": [U, {**A, "weight": True}]}, "weight True"),
        ({"messages": [U, A], "metadata": "x"}, "'metadata' is a string"),
        (
            {"messages": [U, {"role": "assistant", "content": None, "tool_calls": "f()"}]},
            "'tool_calls' is a string",
        ),
        (
            {"messages": [U, {"role": "assistant", "content": [{"type": "text", "text": 5}]}]},
            "no string 'text'",
        ),
        ({"prompt": "a", "completion": 3}, "'completion' is a number"),
    ],
)
def test_invalid_schema(row: Any, fragment: str) -> None:
    conversation, problems = parse_row(row)
    assert conversation is None
    assert [p.check for p in problems] == ["invalid_schema"]
    assert fragment in problems[0].message


@pytest.mark.parametrize(
    "messages",
    [
        [S, {"role": "user", "content": ""}, A],
        [S, {"role": "user", "content": "   \n\t"}, A],
        [S, U, {"role": "assistant", "content": " "}],
        [{"role": "system", "content": ""}, U, A],
        [S, U, CALL, {**TOOL, "content": ""}, A],
    ],
)
def test_empty_content(messages: list[Any]) -> None:
    assert "empty_content" in checks_of({"messages": messages})


def test_ending_on_a_tool_call_is_a_valid_function_calling_example() -> None:
    assert checks_of({"messages": [S, U, CALL]}) == []


def test_tool_call_only_assistant_turn_is_not_empty() -> None:
    assert checks_of({"messages": [S, U, CALL, TOOL, A]}) == []


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([U, S, A], "system message at position 2"),
        ([S, U, U, A], "two user turns in a row"),
        ([S, A, U, A], "opens with an assistant turn"),
        ([S, U, A, U], "ends on a user turn"),
        ([S, U, TOOL, A], "does not follow an assistant tool call"),
        ([S, U, A, A], "two assistant turns in a row"),
        ([S, U, CALL, {**TOOL, "tool_call_id": "call_9"}, A], "no earlier call made"),
        ([S, TOOL, U, A], "opens with a tool message"),
    ],
)
def test_role_order(messages: list[Any], fragment: str) -> None:
    _, problems = parse_row({"messages": messages})
    order = [p for p in problems if p.check == "role_order"]
    assert order, problems
    assert fragment in order[0].message


def test_no_assistant() -> None:
    assert checks_of({"messages": [S, U]}) == ["no_assistant"]
    assert checks_of({"messages": [U]}) == ["no_assistant"]


def test_all_weight_zero_is_a_warning_not_an_error() -> None:
    _, problems = parse_row({"messages": [S, U, {**A, "weight": 0}]})
    assert [(p.check, p.severity) for p in problems] == [("no_assistant", "warning")]


def test_image_only_user_turn_is_not_empty() -> None:
    image = {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
    }
    assert checks_of({"messages": [S, image, A]}) == []


def test_legacy_function_call_is_a_tool_call() -> None:
    call = {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "lookup", "arguments": "{}"},
    }
    result = {"role": "function", "name": "lookup", "content": '{"ok": true}'}
    assert checks_of({"messages": [S, U, call, result, A]}) == []
    assert checks_of(
        {"messages": [S, U, {"role": "user", "content": "x", "function_call": {"name": "f"}}, A]}
    ) == ["invalid_schema"]


SHAREGPT_VALID = [
    {
        "conversations": [
            {"from": "human", "value": "Hi, where is my order?"},
            {"from": "gpt", "value": "It ships today."},
        ]
    },
    {
        "system": "Be brief.",
        "conversations": [
            {"from": "human", "value": "a?"},
            {"from": "gpt", "value": "b."},
            {"from": "human", "value": "c?"},
            {"from": "gpt", "value": "d."},
        ],
    },
    {
        "conversations": [
            {"from": "human", "value": "Weather in Paris?"},
            {
                "from": "function_call",
                "value": '{"name": "get_weather", "arguments": {"city": "Paris"}}',
            },
            {"from": "observation", "value": '{"temp": 21}'},
            {"from": "gpt", "value": "It is 21 °C in Paris."},
        ],
        "tools": [{"name": "get_weather"}],
    },
    {"conversations": [{"role": "user", "content": "x?"}, {"role": "assistant", "content": "y."}]},
]


@pytest.mark.parametrize("row", SHAREGPT_VALID)
def test_sharegpt_rows(row: Any) -> None:
    conversation, problems = parse_row(row)
    assert conversation is not None and problems == []
    assert conversation.messages[-1]["role"] == "assistant"


def test_sharegpt_problems() -> None:
    assert checks_of(
        {"conversations": [{"from": "robot", "value": "x"}, {"from": "gpt", "value": "y"}]}
    ) == ["invalid_schema"]
    assert checks_of({"conversations": "hi"}) == ["invalid_schema"]
    assert checks_of(
        {
            "conversations": [
                {"from": "human", "value": "x"},
                {"from": "human", "value": "y"},
                {"from": "gpt", "value": "z"},
            ]
        }
    ) == ["role_order"]
    assert checks_of({"conversations": [{"from": "human", "value": "x"}]}) == ["no_assistant"]


def test_alpaca_rows() -> None:
    conversation, problems = parse_row(
        {
            "instruction": "Summarise.",
            "input": "A long text.",
            "output": "Short.",
            "history": [["q", "a"]],
        }
    )
    assert conversation is not None and problems == []
    assert [m["role"] for m in conversation.messages] == ["user", "assistant", "user", "assistant"]
    assert conversation.messages[2]["content"] == "Summarise.\n\nA long text."
    assert checks_of({"instruction": "Do it.", "output": ""}) == ["empty_content"]
    assert checks_of({"instruction": 3, "output": "x"}) == ["invalid_schema"]
