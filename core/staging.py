"""Rows staged in Parquet between the scan and the store: the store is locked only for the
final insert, and a crash mid-scan leaves nothing half-written in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

EXAMPLE_SCHEMA = pa.schema(
    [
        ("line", pa.int32()),
        ("valid", pa.bool_()),
        ("raw", pa.string()),
        ("messages", pa.string()),
        ("metadata", pa.string()),
        ("tools", pa.string()),
        ("system_text", pa.string()),
        ("user_text", pa.string()),
        ("assistant_text", pa.string()),
        ("label", pa.string()),
        ("slice", pa.string()),
        ("n_turns", pa.int32()),
        ("total_tokens", pa.int32()),
        ("assistant_tokens", pa.int32()),
        ("content_hash", pa.string()),
    ]
)
STORED_COLUMNS: tuple[str, ...] = tuple(EXAMPLE_SCHEMA.names)


class ParquetRowSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = pq.ParquetWriter(str(path), EXAMPLE_SCHEMA, compression="zstd")

    def write_batch(self, columns: dict[str, list[Any]]) -> None:
        self._writer.write_table(pa.table(columns, schema=EXAMPLE_SCHEMA))

    def close(self) -> None:
        self._writer.close()
