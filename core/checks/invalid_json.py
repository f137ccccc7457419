"""invalid_json: a line that is not UTF-8 or not JSON; the reader (core.source) finds it."""

from __future__ import annotations

import orjson

from core.checks.base import ReadCheck


def undecodable(raw: bytes, error: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1})"


def unparsable(text: str, error: orjson.JSONDecodeError, is_last: bool, ended: bool) -> str:
    position = getattr(error, "pos", None)
    if is_last and not ended and position is not None and position >= len(text) - 1:
        return "the record is truncated: the file ends in the middle of this line"
    detail = str(error).split(":", 1)[0]
    where = f" at column {position + 1}" if isinstance(position, int) else ""
    return f"not valid JSON ({detail}{where})"


CHECK = ReadCheck(
    "invalid_json",
    ("error",),
    "a line that is not UTF-8 or not JSON (truncated tail included)",
)
