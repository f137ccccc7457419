"""What every data check is made of: its registry entry, and the context it reads.

A check is one module under core/checks/ that defines a `CHECK` (id, severities, a
one-line doc and the function that finds it) and is listed once in
core/checks/registry.py. The kind of spec says when the scan calls it:

- `ReadCheck`: found by the reader or the parser; the row goes no further.
- `FormatCheck`: a per-row format check on a row that parsed into a conversation.
- `RowCheck`: a per-row check that also needs the row's token count.
- `DatasetCheck`: a cross-row check over every parsed row of the file.
- `AgainstCheck`: a check of the file's rows against another set of rows.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.findings import Finding, Severity


@dataclass(slots=True)
class Conversation:
    """A row that parsed into messages (it may still have order or content problems)."""

    messages: list[dict[str, Any]]
    texts: list[str]  # the plain text of each message, tool calls rendered for assistants
    metadata: dict[str, Any] = field(default_factory=dict)
    tools: list[Any] | None = None


SYSTEM_ROLES = frozenset({"system", "developer"})
TOOL_ROLES = frozenset({"tool", "function"})
KNOWN_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})

ProgressCallback = Callable[[str, int, int | None], None]
"""progress(stage, done, total): total is None when unknown."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A problem in one row, before the scan gives it a line number."""

    check: str
    severity: Severity
    message: str


def has_tool_calls(message: dict[str, Any]) -> bool:
    calls = message.get("tool_calls")
    # `function_call` is the legacy single-call form, still found in older datasets.
    return (isinstance(calls, list) and len(calls) > 0) or isinstance(
        message.get("function_call"), dict
    )


def has_media(message: dict[str, Any]) -> bool:
    """A content list with non-text parts (an image, audio) is not empty without text."""
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type", "text") not in TEXT_PART_TYPES
        for part in content
    )


_INPUT_TRANSLATION = str.maketrans(
    {**{char: " " for char in string.punctuation if char != "'"}, "'": None, "\u2019": None}
)


def normalize_input(text: str) -> str:
    """The question as compared across rows: case, punctuation and spacing ignored."""
    # str.translate is a single C pass; a regex substitution here cost seconds per million.
    return " ".join(text.lower().translate(_INPUT_TRANSLATION).split())


def digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def dialog_text(user_text: str, assistant_text: str) -> str:
    """What near-duplicate detection compares: the non-system turns.

    Never the system prompt, which most rows share and would make every row look alike.
    """
    return f"{user_text}\n{assistant_text}"


@dataclass
class ParsedRows:
    """Compact per-row state kept for the cross-row checks (memory matters at 1M rows)."""

    lines: list[int] = field(default_factory=list)
    exact_keys: list[bytes] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    user_lengths: list[int] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    # Digest of the normalised question (b"" when there is none); computed in the scan
    # workers because normalising a million questions is seconds of single-core work.
    input_keys: list[bytes] = field(default_factory=list)

    def append(self, line: int, key: bytes, user: str, assistant: str, label: str | None) -> None:
        self.lines.append(line)
        self.exact_keys.append(key)
        self.dialogs.append(dialog_text(user, assistant))
        self.user_lengths.append(len(user))
        self.labels.append(label)
        question = normalize_input(user)
        self.input_keys.append(digest(question) if question else b"")

    def extend(self, other: ParsedRows) -> None:
        self.lines.extend(other.lines)
        self.exact_keys.extend(other.exact_keys)
        self.dialogs.extend(other.dialogs)
        self.user_lengths.extend(other.user_lengths)
        self.labels.extend(other.labels)
        self.input_keys.extend(other.input_keys)

    def user_text(self, index: int) -> str:
        return self.dialogs[index][: self.user_lengths[index]]

    def assistant_text(self, index: int) -> str:
        return self.dialogs[index][self.user_lengths[index] + 1 :]


@dataclass(frozen=True, slots=True)
class RowContext:
    """One parsed row as a per-row check sees it."""

    line: int
    conversation: Conversation
    total_tokens: int
    tokens_exact: bool  # False: total_tokens is an estimate (no tokenizer given)
    max_seq_len: int


class DatasetContext:
    """Every parsed row of a file, with the exact-copy groups the cross-row checks share."""

    def __init__(
        self, parsed: ParsedRows, threshold: float, progress: ProgressCallback | None = None
    ) -> None:
        self.parsed = parsed
        self.threshold = threshold
        self.progress = progress
        groups: dict[bytes, list[int]] = {}
        for index, key in enumerate(parsed.exact_keys):
            groups.setdefault(key, []).append(index)
        # Each row's group is named by its first member; only groups of copies are kept,
        # since the key dictionary is the size of the file.
        self.exact_group_of = list(range(len(parsed.lines)))
        self.copy_groups: list[list[int]] = []
        for members in groups.values():
            if len(members) > 1:
                self.copy_groups.append(members)
                for member in members:
                    self.exact_group_of[member] = members[0]

    @property
    def count(self) -> int:
        return len(self.parsed.lines)

    def stage_progress(self, stage: str) -> Callable[[int, int], None] | None:
        progress = self.progress
        if progress is None:
            return None
        return lambda done, total: progress(stage, done, total)


@dataclass(frozen=True, slots=True)
class CheckSpec:
    id: str
    severities: tuple[Severity, ...]
    doc: str  # one line; the README's check table is generated from it


@dataclass(frozen=True, slots=True)
class ReadCheck(CheckSpec):
    """Reported by the reader (core.source) or the parser (core.conversation)."""


@dataclass(frozen=True, slots=True)
class FormatCheck(CheckSpec):
    find: Callable[[Conversation], RowProblem | None]


@dataclass(frozen=True, slots=True)
class RowCheck(CheckSpec):
    find: Callable[[RowContext], Sequence[Finding]]


@dataclass(frozen=True, slots=True)
class DatasetCheck(CheckSpec):
    find: Callable[[DatasetContext], list[Finding]]


@dataclass(frozen=True, slots=True)
class AgainstCheck(CheckSpec):
    # find(rows, other_rows, other_label, near_dup_threshold)
    find: Callable[[ParsedRows, ParsedRows, str, float], list[Finding]]
