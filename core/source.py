"""Reading a dataset file row by row: JSONL (BOM, CRLF, bad UTF-8, truncated tail) or Parquet.

Whole-file problems (missing, a folder, empty, binary, compressed) raise InputError, which
the CLI turns into exit code 2; per-line problems become findings with line numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson

from core.checks import invalid_json, invalid_schema
from store.errors import InputError

UTF8_BOM = b"\xef\xbb\xbf"
PARQUET_MAGIC = b"PAR1"
SNIFF_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One record of the source: parsed JSON value, or why it could not be parsed."""

    line: int  # 1-based physical line (Parquet: 1-based row number)
    raw: str  # the line as text (undecodable bytes replaced), for storage and display
    value: Any = None
    error: str | None = None  # set when the line cannot be checked as a row
    error_check: str = invalid_json.CHECK.id  # the check `error` is reported under


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sniff_format(path: Path) -> str:
    """'jsonl' or 'parquet', or an InputError that says what the file is instead."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path} is a folder; pass a .jsonl or .parquet file")
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from error
    if not head:
        raise InputError(f"{path} is empty: no rows to read")
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if (
        head.startswith(b"\x1f\x8b")
        or head.startswith(b"PK\x03\x04")
        or head.startswith(b"\x28\xb5\x2f\xfd")
    ):
        raise InputError(f"{path} is compressed (gzip/zip/zstd); decompress it first")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{path} is UTF-16 encoded; convert it to UTF-8 JSONL")
    if b"\x00" in head:
        raise InputError(f"{path} looks like a binary file (it contains NUL bytes), not JSONL")
    if not head.strip(b" \t\r\n" + UTF8_BOM):
        raise InputError(f"{path} holds only blank lines: no rows to read")
    return "jsonl"


# orjson refuses to read deeper than this; the JSON is valid, the row unusable.
_READ_DEPTH_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class ByteRange:
    """A slice of a JSONL file that starts at a line start; `first_line` is its line number."""

    start: int
    end: int
    first_line: int
    is_final: bool


def split_ranges(path: Path, parts: int) -> list[ByteRange]:
    """Cut the file into about `parts` newline-aligned ranges with their first line numbers."""
    size = path.stat().st_size
    cuts = [0]
    with path.open("rb") as handle:
        for index in range(1, parts):
            handle.seek(size * index // parts)
            handle.readline()
            position = handle.tell()
            if cuts[-1] < position < size:
                cuts.append(position)
        cuts.append(size)
        ranges: list[ByteRange] = []
        line = 1
        handle.seek(0)
        for start, end in pairwise(cuts):
            ranges.append(ByteRange(start, end, line, is_final=end == size))
            remaining = end - start
            while remaining > 0:
                block = handle.read(min(remaining, 1 << 24))
                if not block:
                    break
                remaining -= len(block)
                line += block.count(b"\n")
    return ranges


def iter_jsonl(
    path: Path,
    on_bytes: Callable[[int], None] | None = None,
    byte_range: ByteRange | None = None,
) -> Iterator[SourceRow]:
    """Yield one SourceRow per non-blank physical line (blank lines are not rows)."""
    start = byte_range.start if byte_range else 0
    end = byte_range.end if byte_range else None
    ends_file = byte_range.is_final if byte_range else True
    with path.open("rb") as handle:
        handle.seek(start)
        pending: bytes | None = None
        line_number = (byte_range.first_line if byte_range else 1) - 1
        consumed = 0
        for raw_line in handle:
            if pending is not None:
                yield _parse_line(pending, line_number, is_last=False)
            line_number += 1
            consumed += len(raw_line)
            if on_bytes is not None and line_number % 4096 == 0:
                on_bytes(consumed)
            pending = raw_line
            if end is not None and start + consumed >= end:
                break
        if pending is not None:
            yield _parse_line(pending, line_number, is_last=ends_file)
        if on_bytes is not None:
            on_bytes(consumed)


def _parse_line(raw_line: bytes, line_number: int, *, is_last: bool) -> SourceRow:
    ended = raw_line.endswith(b"\n")
    body = raw_line.rstrip(b"\r\n")
    if line_number == 1 and body.startswith(UTF8_BOM):
        body = body[len(UTF8_BOM) :]
    if not body.strip():
        return SourceRow(line_number, "", error="")  # blank: filtered by the caller
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        return SourceRow(
            line_number,
            body.decode("utf-8", "replace"),
            error=invalid_json.undecodable(body, error),
        )
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if str(error).startswith("depth limit exceeded"):
            unreadable = invalid_schema.too_deep_to_read(_READ_DEPTH_LIMIT)
            return SourceRow(
                line_number, text, error=unreadable, error_check=invalid_schema.CHECK.id
            )
        return SourceRow(
            line_number, text, error=invalid_json.unparsable(text, error, is_last, ended)
        )
    # Counting brackets is a cheap bound on the depth (two C scans), so only a line with
    # enough of them is encoded to see whether orjson can write it back.
    if body.count(b"[") + body.count(b"{") > invalid_schema.MAX_STORED_NESTING:
        too_deep = invalid_schema.nesting_problem(value)
        if too_deep is not None:
            return SourceRow(line_number, text, error=too_deep, error_check=invalid_schema.CHECK.id)
    return SourceRow(line_number, text, value=value)


def _drop_nulls(message: Any) -> Any:
    # Parquet structs give every message every field; absent fields come back as None.
    if isinstance(message, dict):
        return {k: v for k, v in message.items() if v is not None or k == "content"}
    return message


def iter_parquet(path: Path, on_rows: Callable[[int], None] | None = None) -> Iterator[SourceRow]:
    import pyarrow.parquet as pq  # only Parquet sources pay for this import

    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:
        raise InputError(f"{path}: not a readable Parquet file ({error})") from error
    columns = set(parquet.schema_arrow.names)
    usable = (
        "messages" in columns
        or "conversations" in columns
        or {"prompt", "completion"} <= columns
        or {"instruction", "output"} <= columns
    )
    if not usable:
        raise InputError(
            f"{path}: Parquet needs a 'messages' (or ShareGPT 'conversations') column, or "
            f"'prompt'/'completion' or 'instruction'/'output' columns; "
            f"found {', '.join(sorted(columns)) or 'none'}"
        )
    row_number = 0
    try:
        for batch in parquet.iter_batches(batch_size=8192):
            for record in batch.to_pylist():
                row_number += 1
                row = {k: v for k, v in record.items() if v is not None}
                for key in ("messages", "conversations"):
                    if isinstance(row.get(key), list):
                        row[key] = [_drop_nulls(m) for m in row[key]]
                raw = orjson.dumps(row, default=str).decode()
                yield SourceRow(row_number, raw, value=row)
            if on_rows is not None:
                on_rows(row_number)
    except InputError:
        raise
    except Exception as error:
        raise InputError(
            f"{path}: Parquet file is damaged near row {row_number + 1} ({error})"
        ) from error
