"""The finding: one problem in a dataset, as `ftod data check --json` reports it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True)
class PiiSpan:
    """Where a PII match sits: message index in the conversation and char offsets."""

    message_index: int
    start: int
    end: int
    kind: str
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {
            "message_index": self.message_index,
            "start": self.start,
            "end": self.end,
            "kind": self.kind,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class OtherRef:
    """The other file's side of a leakage finding."""

    path: str
    lines: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    severity: Severity
    lines: tuple[int, ...]
    message: str
    other: OtherRef | None = None
    spans: tuple[PiiSpan, ...] = field(default=())
    # Only volatile_fact findings carry these: the kind of stale fact and its text.
    kind: str | None = None
    value: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The contract shape of `data check --json` (spans are an ftod extra)."""
        payload: dict[str, Any] = {
            "check": self.check,
            "severity": self.severity,
            "lines": list(self.lines),
            "message": self.message,
        }
        if self.other is not None:
            payload["other"] = {"path": self.other.path, "lines": list(self.other.lines)}
        if self.spans:
            payload["spans"] = [span.as_json() for span in self.spans]
        if self.kind is not None:
            payload["kind"] = self.kind
            payload["value"] = self.value
        return payload
