"""What every importer is handed and what it returns, and the contract it follows."""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from core.runs.importers.events import counted
from store.errors import InputError

# Logs are read whole; a file this large is not a training log.
MAX_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class ImportedLog:
    format: str
    events: list[dict[str, Any]]
    total_steps: int | None
    completed: bool | None
    summary: dict[str, Any]
    warnings: list[str]


@dataclass
class LogSource:
    """A log's decoded text, with the views several importers look at parsed once."""

    path: Path
    text: str
    expected: str
    """"expected …": every format the registry knows, for error messages."""
    warnings: list[str] = field(default_factory=list)

    @cached_property
    def stripped(self) -> str:
        return self.text.strip()

    @cached_property
    def _whole(self) -> tuple[Any, str | None]:
        stripped = self.stripped
        if stripped[0] not in "{[":
            return None, None
        try:
            return json.loads(stripped), None
        except (ValueError, RecursionError) as exc:
            first_line = stripped.split("\n", 1)[0].strip()
            if first_line not in ("{", "[") and '"log_history"' not in stripped:
                return None, None  # JSON lines or a console capture that starts with a dict
            detail = (
                f"{exc.msg} at line {exc.lineno} column {exc.colno}"
                if isinstance(exc, json.JSONDecodeError)
                else type(exc).__name__
            )
            kind = (
                "looks like a Hugging Face trainer_state.json"
                if '"log_history"' in stripped
                else "starts like a JSON document"
            )
            return None, (
                f"{self.path} {kind} but is not valid JSON ({detail}); the file may be cut "
                f"short or damaged. Expected a complete JSON document: {self.expected}"
            )

    @property
    def document(self) -> Any:
        """The whole text as one JSON value, or None when it is not one JSON document."""
        return self._whole[0]

    @property
    def damaged_document(self) -> str | None:
        """Why a text that is laid out as one JSON document cannot be read as one."""
        return self._whole[1]

    @cached_property
    def json_lines(self) -> tuple[list[dict[str, Any]], int]:
        """The lines that are JSON objects, and how many non-blank lines are not."""
        rows: list[dict[str, Any]] = []
        not_json = 0
        for line in self.text.splitlines():
            line = line.strip()
            if not line:
                continue
            if line[0] != "{":
                not_json += 1
                continue
            try:
                value = json.loads(line)
            except (ValueError, RecursionError):
                not_json += 1
                continue
            if isinstance(value, dict):
                rows.append(value)
            else:
                not_json += 1
        return rows, not_json


class Importer(Protocol):
    """One log format. The registry asks every importer, then reads with the surest."""

    @property
    def name(self) -> str:
        """The format id, stored as the imported run's `source`."""
        ...

    @property
    def expects(self) -> str:
        """The format as an error message names it, e.g. "an OpenAI results CSV (...)"."""
        ...

    def detect(self, source: LogSource) -> float:
        """0 when the log is not this format; up to 1 the surer the content makes it.

        A format that recognises a damaged file of its own kind still detects it, and its
        `read` says what is wrong (better than "unknown format")."""
        ...

    def read(self, source: LogSource) -> ImportedLog:
        """The log as events; InputError when it cannot be used."""
        ...


def read_bytes(path: Path, expected: str) -> bytes:
    try:
        if path.is_dir():
            raise InputError(f"{path} is a directory; {expected}")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputError(
                f"{path} is {size / 2**20:.0f} MiB, too large to be a training log; {expected}"
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; {expected}") from None
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror or exc}); {expected}") from None


_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")


def decode(data: bytes, path: Path, expected: str) -> LogSource:
    source = LogSource(path, "", expected)
    if not data.strip():
        raise InputError(f"{path} is empty; {expected}")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # PowerShell's `>` writes UTF-16 with a BOM: a common way to capture a Windows run.
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise InputError(f"{path} starts with a UTF-16 mark but is not UTF-16 text") from None
    else:
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", errors="replace")
            bad = text.count("\ufffd")
            if bad > max(8, len(text) // 100):
                raise InputError(f"{path} is not UTF-8 text (binary data?); {expected}") from None
            source.warnings.append(counted(bad, "byte", "{were} not UTF-8 and {were} replaced"))
    if len(_CONTROL.findall(text)) > max(8, len(text) // 100):
        raise InputError(f"{path} holds binary data, not text; {expected}")
    if not text.strip():
        raise InputError(f"{path} holds only whitespace; {expected}")
    source.text = text
    return source
