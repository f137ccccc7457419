"""User text (names, labels, paths, messages read from files) made safe to print on a terminal.

A run name or a log line is data, not a command to the terminal: an ESC sequence in it would
recolour the screen, retitle the window or move the cursor. Every control character is shown
as its Python escape instead (`\\x1b`), so what a person sees is what is stored.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, the Unicode line breaks, and the bidirectional marks and overrides
# that reorder what is shown.
_UNICODE_CONTROLS = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{_UNICODE_CONTROLS}]")
_CONTROL_BUT_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_UNICODE_CONTROLS}]")


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: str, *, keep_lines: bool = False) -> str:
    """`text` with every control character written as its escape; tabs and newlines are
    kept when `keep_lines` (a log or a multi-line message), else escaped too (a name)."""
    pattern = _CONTROL_BUT_LINES if keep_lines else _CONTROL
    return pattern.sub(_escaped, text)


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None
