"""Typed reads and writes of datasets, versions, examples, findings and splits."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from store.db import Store
from store.errors import NotFoundError

PAGE_SIZE = 200


@dataclass(frozen=True, slots=True)
class DatasetListing:
    name: str
    versions: int
    latest_version: int
    rows: int
    sha256: str
    errors: int
    warnings: int
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": self.versions,
            "latest_version": self.latest_version,
            "rows": self.rows,
            "sha256": self.sha256,
            "errors": self.errors,
            "warnings": self.warnings,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class VersionRecord:
    version_id: int
    dataset: str
    version: int
    sha256: str
    source_path: str
    source_format: str
    rows_total: int
    rows_valid: int
    errors: int
    warnings: int
    token_counting: str
    max_seq_len: int
    summary: dict[str, Any]
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"

    def as_json(self) -> dict[str, Any]:
        """The version's summary fields; `ftod data show` adds its findings and splits."""
        return {
            "name": self.dataset,
            "version": self.version,
            "ref": self.ref,
            "sha256": self.sha256,
            "source_path": self.source_path,
            "format": self.source_format,
            "rows": self.rows_total,
            "valid_rows": self.rows_valid,
            "errors": self.errors,
            "warnings": self.warnings,
            "token_counting": self.token_counting,
            "max_seq_len": self.max_seq_len,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class FindingRecord:
    finding_id: int
    check: str
    severity: str
    lines: tuple[int, ...]
    message: str
    other_path: str | None
    other_lines: tuple[int, ...]
    spans: tuple[dict[str, Any], ...]
    split_id: int | None

    def as_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "check": self.check,
            "severity": self.severity,
            "lines": list(self.lines),
            "message": self.message,
        }
        if self.other_path is not None:
            payload["other"] = {"path": self.other_path, "lines": list(self.other_lines)}
        return payload


@dataclass(frozen=True, slots=True)
class ExampleRecord:
    line: int
    valid: bool
    raw: str
    messages: list[dict[str, Any]] | None
    metadata: dict[str, Any]
    label: str | None
    slice: str | None
    n_turns: int | None
    total_tokens: int | None
    assistant_tokens: int | None
    content_hash: str | None


@dataclass(frozen=True, slots=True)
class ExampleListing:
    """A row of the examples table: what a list shows, without the full conversation."""

    line: int
    valid: bool
    preview: str
    label: str | None
    slice: str | None
    total_tokens: int | None


@dataclass(frozen=True, slots=True)
class SplitRecord:
    split_id: int
    version_id: int
    seed: int
    val_fraction: float
    test_fraction: float
    group_by: str | None
    stratify: str | None
    manifest: dict[str, Any]
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "split_id": self.split_id,
            "created_at": self.created_at.isoformat(),
            **self.manifest,
        }


@dataclass(frozen=True, slots=True)
class FindingToStore:
    check: str
    severity: str
    lines: Sequence[int]
    message: str
    other_path: str | None = None
    other_lines: Sequence[int] | None = None
    spans: Sequence[dict[str, Any]] | None = None


def parse_ref(ref: str) -> tuple[str, int | None]:
    """'name' or 'name@3' → (name, version or None for the latest)."""
    name, _, version = ref.rpartition("@") if "@" in ref else (ref, "", "")
    if not name:
        raise NotFoundError(f"{ref!r} is not a dataset reference; use NAME or NAME@VERSION")
    if not version:
        return name, None
    digits = version.lstrip("v")
    if not digits.isdigit():
        raise NotFoundError(f"{ref!r}: version must be a number, as in {name}@2")
    return name, int(digits)


_VERSION_COLUMNS = """v.version_id, d.name, v.version, v.sha256, v.source_path, v.source_format,
    v.rows_total, v.rows_valid, v.errors, v.warnings, v.token_counting, v.max_seq_len,
    v.summary, v.created_at"""


def _version_from_row(row: tuple[Any, ...]) -> VersionRecord:
    summary = json.loads(row[12]) if row[12] else {}
    return VersionRecord(*row[:12], summary, row[13])  # type: ignore[call-arg]


def parsed_rows_query(
    last_column: Literal["raw", "slice"], version_id: int, split_id: int | None, split: str | None
) -> tuple[str, list[Any]]:
    """SQL for (line, messages, metadata, `last_column`) of a version's parsed rows in line
    order, all of them or one split's (`split_id`, `split`)."""
    if split_id is not None:
        query = f"""SELECT e.line, e.messages, e.metadata, e.{last_column} FROM examples e
                    JOIN split_assignments s ON s.line = e.line AND s.split_id = ?
                    WHERE e.version_id = ? AND e.messages IS NOT NULL AND s.split = ?
                    ORDER BY e.line"""
        return query, [split_id, version_id, split]
    query = f"""SELECT line, messages, metadata, {last_column} FROM examples
                WHERE version_id = ? AND messages IS NOT NULL ORDER BY line"""
    return query, [version_id]


class DatasetRepository:
    """Every query the data desk needs; each method opens and closes its own connection."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reads -------------------------------------------------------------------------
    def list_datasets(self) -> list[DatasetListing]:
        with self.store.reading() as connection:
            rows = connection.execute(
                """
                WITH latest AS (
                    SELECT dataset_id, max(version) AS version, count(*) AS versions
                    FROM dataset_versions GROUP BY dataset_id
                )
                SELECT d.name, l.versions, l.version, v.rows_total, v.sha256, v.errors,
                       v.warnings, v.created_at
                FROM datasets d
                JOIN latest l USING (dataset_id)
                JOIN dataset_versions v ON v.dataset_id = d.dataset_id AND v.version = l.version
                ORDER BY d.name
                """
            ).fetchall()
        return [DatasetListing(*row) for row in rows]

    def versions(self, name: str) -> list[VersionRecord]:
        with self.store.reading() as connection:
            rows = connection.execute(
                f"""SELECT {_VERSION_COLUMNS} FROM dataset_versions v
                JOIN datasets d USING (dataset_id) WHERE d.name = ? ORDER BY v.version""",
                [name],
            ).fetchall()
        if not rows:
            raise NotFoundError(f"No dataset named {name!r}. `ftod data list` shows the datasets.")
        return [_version_from_row(row) for row in rows]

    def version(self, ref: str) -> VersionRecord:
        name, number = parse_ref(ref)
        versions = self.versions(name)
        if number is None:
            return versions[-1]
        for record in versions:
            if record.version == number:
                return record
        known = ", ".join(str(v.version) for v in versions)
        raise NotFoundError(f"{name} has no version {number} (versions: {known})")

    def version_by_id(self, version_id: int) -> VersionRecord:
        with self.store.reading() as connection:
            row = connection.execute(
                f"""SELECT {_VERSION_COLUMNS} FROM dataset_versions v
                JOIN datasets d USING (dataset_id) WHERE v.version_id = ?""",
                [version_id],
            ).fetchone()
        if row is None:
            raise NotFoundError(f"No dataset version with id {version_id}")
        return _version_from_row(row)

    def version_with_hash(self, name: str, sha256: str) -> VersionRecord | None:
        with self.store.reading() as connection:
            row = connection.execute(
                f"""SELECT {_VERSION_COLUMNS} FROM dataset_versions v
                JOIN datasets d USING (dataset_id) WHERE d.name = ? AND v.sha256 = ?
                ORDER BY v.version DESC LIMIT 1""",
                [name, sha256],
            ).fetchone()
        return None if row is None else _version_from_row(row)

    def finding_counts(self, version_id: int) -> list[tuple[str, str, int, int]]:
        """(check, severity, findings, rows involved) for the version (split leakage included)."""
        with self.store.reading() as connection:
            return [
                (str(a), str(b), int(c), int(d))
                for a, b, c, d in connection.execute(
                    """SELECT check_id, severity, count(DISTINCT finding_id),
                           count(DISTINCT l) FROM (
                               SELECT check_id, severity, finding_id, unnest(lines) AS l
                               FROM findings WHERE version_id = ?)
                       GROUP BY check_id, severity ORDER BY check_id, severity""",
                    [version_id],
                ).fetchall()
            ]

    def findings_page(
        self,
        version_id: int,
        *,
        check: str | None = None,
        severity: str | None = None,
        line: int | None = None,
        search: str | None = None,
        offset: int = 0,
        limit: int = PAGE_SIZE,
    ) -> list[FindingRecord]:
        clauses = ["version_id = ?"]
        params: list[Any] = [version_id]
        if check is not None:
            clauses.append("check_id = ?")
            params.append(check)
        if severity is not None:
            clauses.append("severity = ?")
            params.append(severity)
        if line is not None:
            clauses.append("list_contains(lines, ?)")
            params.append(line)
        if search:
            clauses.append("(message ILIKE ? OR check_id ILIKE ?)")
            params += [f"%{search}%", f"%{search}%"]
        params += [limit, offset]
        with self.store.reading() as connection:
            rows = connection.execute(
                f"""SELECT finding_id, check_id, severity, lines, message, other_path,
                           other_lines, spans, split_id
                    FROM findings WHERE {" AND ".join(clauses)}
                    ORDER BY first_line, check_id, finding_id LIMIT ? OFFSET ?""",
                params,
            ).fetchall()
        return [
            FindingRecord(
                finding_id=row[0],
                check=row[1],
                severity=row[2],
                lines=tuple(row[3]),
                message=row[4],
                other_path=row[5],
                other_lines=tuple(row[6] or ()),
                spans=tuple(json.loads(row[7])) if row[7] else (),
                split_id=row[8],
            )
            for row in rows
        ]

    def count_findings(
        self,
        version_id: int,
        check: str | None = None,
        search: str | None = None,
        severity: str | None = None,
    ) -> int:
        clauses = ["version_id = ?"]
        params: list[Any] = [version_id]
        if check is not None:
            clauses.append("check_id = ?")
            params.append(check)
        if severity is not None:
            clauses.append("severity = ?")
            params.append(severity)
        if search:
            clauses.append("(message ILIKE ? OR check_id ILIKE ?)")
            params += [f"%{search}%", f"%{search}%"]
        with self.store.reading() as connection:
            row = connection.execute(
                f"SELECT count(*) FROM findings WHERE {' AND '.join(clauses)}", params
            ).fetchone()
        return int(row[0]) if row else 0

    def example(self, version_id: int, line: int) -> ExampleRecord:
        with self.store.reading() as connection:
            row = connection.execute(
                """SELECT line, valid, raw, messages, metadata, label, slice, n_turns,
                          total_tokens, assistant_tokens, content_hash
                   FROM examples WHERE version_id = ? AND line = ?""",
                [version_id, line],
            ).fetchone()
        if row is None:
            raise NotFoundError(f"No row at line {line} in this dataset version")
        return ExampleRecord(
            line=row[0],
            valid=row[1],
            raw=row[2] or "",
            messages=json.loads(row[3]) if row[3] else None,
            metadata=json.loads(row[4]) if row[4] else {},
            label=row[5],
            slice=row[6],
            n_turns=row[7],
            total_tokens=row[8],
            assistant_tokens=row[9],
            content_hash=row[10],
        )

    def examples_page(
        self, version_id: int, *, search: str | None = None, offset: int = 0, limit: int = PAGE_SIZE
    ) -> list[ExampleListing]:
        clauses = ["version_id = ?"]
        params: list[Any] = [version_id]
        if search:
            clauses.append("raw ILIKE ?")
            params.append(f"%{search}%")
        params += [limit, offset]
        with self.store.reading() as connection:
            rows = connection.execute(
                f"""SELECT line, valid, left(coalesce(user_text, raw), 200), label, slice,
                           total_tokens
                    FROM examples WHERE {" AND ".join(clauses)} ORDER BY line LIMIT ? OFFSET ?""",
                params,
            ).fetchall()
        return [ExampleListing(*row) for row in rows]

    def splits(self, version_id: int) -> list[SplitRecord]:
        with self.store.reading() as connection:
            rows = connection.execute(
                """SELECT split_id, version_id, seed, val_fraction, test_fraction, group_by,
                          stratify, manifest, created_at
                   FROM splits WHERE version_id = ? ORDER BY split_id""",
                [version_id],
            ).fetchall()
        return [
            SplitRecord(*row[:7], json.loads(row[7]), row[8])  # type: ignore[call-arg]
            for row in rows
        ]

    def split_columns(self, version_id: int, fields: Sequence[str]) -> dict[str, list[Any]]:
        """Columns of the valid rows that splitting needs, with metadata fields extracted."""
        selects = ["line", "content_hash", "user_text", "assistant_text", "label"]
        params: list[Any] = []
        for position, field_name in enumerate(fields):
            selects.append(f"json_extract_string(metadata, ?) AS field_{position}")
            params.append("$." + ".".join(f'"{part}"' for part in field_name.split(".")))
        params.append(version_id)
        with self.store.reading() as connection:
            table = connection.sql(
                f"SELECT {', '.join(selects)} FROM examples WHERE version_id = ? AND valid "
                "ORDER BY line",
                params=params,
            ).to_arrow_table()
        return {
            name: table.column(index).to_pylist() for index, name in enumerate(table.column_names)
        }

    def iter_export_rows(
        self, version_id: int, split_id: int | None, split: str | None, batch_rows: int = 10_000
    ) -> Iterator[tuple[int, str, str, str | None]]:
        """(line, messages, metadata, tools) of valid rows, optionally only one split."""
        if split_id is not None:
            query = """SELECT e.line, e.messages, e.metadata, e.tools FROM examples e
                       JOIN split_assignments s ON s.line = e.line AND s.split_id = ?
                       WHERE e.version_id = ? AND e.valid AND s.split = ? ORDER BY e.line"""
            params: list[Any] = [split_id, version_id, split]
        else:
            query = """SELECT line, messages, metadata, tools FROM examples
                       WHERE version_id = ? AND valid ORDER BY line"""
            params = [version_id]
        # Fetched as compact Arrow batches inside one short connection, then handed out
        # after it closes: the store is never held while the caller writes its file.
        with self.store.reading() as connection:
            batches = list(connection.sql(query, params=params).to_arrow_reader(batch_rows))
        for batch in batches:
            yield from zip(*(column.to_pylist() for column in batch.columns), strict=True)

    def iter_audit_rows(
        self, version_id: int, split_id: int | None = None, split: str | None = None
    ) -> Iterator[tuple[int, str, str | None, str | None]]:
        """(line, messages, metadata, raw) of every parsed row, or of one split's rows.

        What the knowledge audit reads: the raw row too, since a row's date may sit in a
        top-level `created_at` or `timestamp` rather than in its metadata.
        """
        query, params = parsed_rows_query("raw", version_id, split_id, split)
        with self.store.reading() as connection:
            batches = list(connection.sql(query, params=params).to_arrow_reader(10_000))
        for batch in batches:
            yield from zip(*(column.to_pylist() for column in batch.columns), strict=True)

    # -- writes ------------------------------------------------------------------------
    def add_version(
        self,
        name: str,
        *,
        sha256: str,
        source_path: str,
        source_format: str,
        rows_total: int,
        rows_valid: int,
        errors: int,
        warnings: int,
        token_counting: str,
        max_seq_len: int,
        summary: dict[str, Any],
        examples_parquet: Sequence[Path],
        findings: Sequence[FindingToStore],
        created_at: datetime | None = None,
    ) -> VersionRecord:
        """Insert a new version with its examples and findings in one transaction."""
        with self.store.writing() as connection:
            row = connection.execute(
                "SELECT dataset_id FROM datasets WHERE name = ?", [name]
            ).fetchone()
            stamp = created_at or datetime.now()
            if row is None:
                row = connection.execute(
                    "INSERT INTO datasets (name, created_at) VALUES (?, ?) RETURNING dataset_id",
                    [name, stamp],
                ).fetchone()
            assert row is not None
            dataset_id = int(row[0])
            number_row = connection.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM dataset_versions WHERE dataset_id = ?",
                [dataset_id],
            ).fetchone()
            assert number_row is not None
            version_row = connection.execute(
                """INSERT INTO dataset_versions (dataset_id, version, sha256, source_path,
                       source_format, rows_total, rows_valid, errors, warnings, token_counting,
                       max_seq_len, summary, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING version_id""",
                [
                    dataset_id,
                    int(number_row[0]),
                    sha256,
                    source_path,
                    source_format,
                    rows_total,
                    rows_valid,
                    errors,
                    warnings,
                    token_counting,
                    max_seq_len,
                    json.dumps(summary),
                    stamp,
                ],
            ).fetchone()
            assert version_row is not None
            version_id = int(version_row[0])
            connection.execute(
                """INSERT INTO examples SELECT ? AS version_id, line, valid, raw, messages,
                       metadata, tools, system_text, user_text, assistant_text, label, slice,
                       n_turns, total_tokens, assistant_tokens, content_hash
                   FROM read_parquet(?) ORDER BY line""",
                [version_id, [str(path) for path in examples_parquet]],
            )
            _insert_findings(connection, version_id, None, findings)
        return self.version_by_id(version_id)

    def add_split(
        self,
        version_id: int,
        *,
        seed: int,
        val_fraction: float,
        test_fraction: float,
        group_by: str | None,
        stratify: str | None,
        manifest: dict[str, Any],
        lines: Sequence[int],
        assignments: Sequence[str],
        findings: Sequence[FindingToStore],
        created_at: datetime | None = None,
    ) -> SplitRecord:
        with self.store.writing() as connection:
            row = connection.execute(
                """INSERT INTO splits (version_id, seed, val_fraction, test_fraction, group_by,
                       stratify, manifest, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   RETURNING split_id""",
                [
                    version_id,
                    seed,
                    val_fraction,
                    test_fraction,
                    group_by,
                    stratify,
                    json.dumps(manifest),
                    created_at or datetime.now(),
                ],
            ).fetchone()
            assert row is not None
            split_id = int(row[0])
            table = pa.table(
                {
                    "split_id": pa.array([split_id] * len(lines), pa.int32()),
                    "line": pa.array(lines, pa.int32()),
                    "split": pa.array(assignments, pa.string()),
                }
            )
            connection.register("new_assignments", table)
            connection.execute("INSERT INTO split_assignments SELECT * FROM new_assignments")
            connection.unregister("new_assignments")
            _insert_findings(connection, version_id, split_id, findings)
        return next(s for s in self.splits(version_id) if s.split_id == split_id)


def _insert_findings(
    connection: Any, version_id: int, split_id: int | None, findings: Sequence[FindingToStore]
) -> None:
    if not findings:
        return
    table = pa.table(
        {
            "version_id": pa.array([version_id] * len(findings), pa.int32()),
            "split_id": pa.array([split_id] * len(findings), pa.int32()),
            "check_id": [f.check for f in findings],
            "severity": [f.severity for f in findings],
            "first_line": pa.array([min(f.lines) if f.lines else 0 for f in findings], pa.int32()),
            "lines": pa.array([list(f.lines) for f in findings], pa.list_(pa.int32())),
            "message": [f.message for f in findings],
            "other_path": pa.array([f.other_path for f in findings], pa.string()),
            "other_lines": pa.array(
                [list(f.other_lines) if f.other_lines is not None else None for f in findings],
                pa.list_(pa.int32()),
            ),
            "spans": pa.array(
                [json.dumps(list(f.spans)) if f.spans else None for f in findings], pa.string()
            ),
        }
    )
    connection.register("new_findings", table)
    connection.execute(
        """INSERT INTO findings (version_id, split_id, check_id, severity, first_line, lines,
               message, other_path, other_lines, spans)
           SELECT version_id, split_id, check_id, severity, first_line, lines, message,
                  other_path, other_lines, spans FROM new_findings"""
    )
    connection.unregister("new_findings")
