"""invalid_schema: valid JSON that is not a usable chat row.

The shapes themselves are validated where rows are parsed (core.conversation.parse_row);
this module adds the two ways a well-formed row can still not be stored: nesting deeper
than orjson writes, and integers wider than 64 bits.
"""

from __future__ import annotations

import json
import re

import orjson

from core.checks.base import ReadCheck

# orjson writes at most this many levels of arrays and objects (it reads up to 1024).
MAX_STORED_NESTING = 254
# The row fields ftod re-encodes to store a row: the message lists, metadata and tools.
_ENCODED_FIELDS = ("messages", "prompt", "completion", "conversations", "metadata", "tools")
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
# orjson reads an integer wider than 64 bits as a float, and a float that large is written
# back with an exponent: only encoded metadata or tools with one is re-read exactly.
_LARGE_EXPONENT = re.compile(rb"e\+?[1-9]")


def _too_deep(value: object) -> bool:
    try:
        orjson.dumps(value, default=str)
    except orjson.JSONEncodeError:
        return True
    return False


def nesting_problem(row: object) -> str | None:
    """Why the row cannot be stored when one of its encoded fields is nested too deeply."""
    if not isinstance(row, dict):
        return None
    for key in _ENCODED_FIELDS:
        value = row.get(key)
        if value is None or not _too_deep(value):
            continue
        where = f"'{key}'"
        if isinstance(value, list):
            item = next((i for i, item in enumerate(value, start=1) if _too_deep(item)), None)
            if item is not None:
                where = f"{'message' if key == 'messages' else f'{key} item'} {item}"
        return (
            f"nested too deeply: {where} has more than {MAX_STORED_NESTING} levels of "
            f"arrays and objects (ftod can store at most {MAX_STORED_NESTING})"
        )
    return None


def too_deep_to_read(limit: int) -> str:
    return f"nested too deeply: more than {limit} levels of arrays and objects"


def may_hold_oversized_integer(encoded: bytes) -> bool:
    return _LARGE_EXPONENT.search(encoded) is not None


def _oversized_integer_path(value: object, path: str) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return path if not _INT_MIN <= value <= _INT_MAX else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _oversized_integer_path(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _oversized_integer_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def oversized_integer_problem(raw: str) -> str | None:
    """The first metadata or tools integer wider than 64 bits, read exactly from the line."""
    try:
        row = json.loads(raw)  # the standard library keeps integers of any size exact
    except ValueError:
        return None
    if not isinstance(row, dict):
        return None
    for key in ("metadata", "tools"):
        path = _oversized_integer_path(row.get(key), key)
        if path is not None:
            return f"integer too large (> 64 bits) in {path}"
    return None


CHECK = ReadCheck(
    "invalid_schema",
    ("error",),
    "not an object, no messages, missing/unknown role, wrong content type, bad "
    "`weight`/`tool_calls`, nested deeper than 254 levels, integers wider than 64 bits",
)
