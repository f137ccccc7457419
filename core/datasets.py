"""The data desk's operations: add a file as a dataset version, export, split.

Shared by the CLI and the TUI; neither touches SQL or the scan internals directly.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from core.findings import Finding
from core.safefiles import output_file
from core.scan import CheckOptions, CheckReport, ProgressCallback, check_file
from core.source import file_sha256, sniff_format
from core.splits import plan_split, validate_field_names
from store.datasets import DatasetRepository, FindingToStore, SplitRecord, VersionRecord
from store.errors import ChecksFailed, InputError, NotFoundError
from store.workspace import Workspace

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class AddOutcome:
    version: VersionRecord
    created: bool
    report: CheckReport | None  # None when the content was already stored


def validate_name(name: str) -> str:
    if not DATASET_NAME.match(name):
        raise InputError(
            f"dataset name {name!r}: use letters, digits, '.', '_' or '-' (no '@' or spaces)"
        )
    return name


def to_store(finding: Finding) -> FindingToStore:
    return FindingToStore(
        check=finding.check,
        severity=finding.severity,
        lines=finding.lines,
        message=finding.message,
        other_path=finding.other.path if finding.other else None,
        other_lines=finding.other.lines if finding.other else None,
        spans=[span.as_json() for span in finding.spans] or None,
    )


@contextmanager
def _staging_area(workspace: Workspace) -> Iterator[Path]:
    """A unique file prefix under .ftod/tmp; every part file made from it is removed after.

    The prefix carries our pid, so files left by a process that was killed mid-add
    (kill -9 skips `finally`) are recognised and removed by the next add.
    """
    staging = workspace.root / "tmp"
    staging.mkdir(exist_ok=True)
    remove_orphaned_staging(staging)
    prefix = staging / f"ingest-{os.getpid()}-{uuid.uuid4().hex}.parquet"
    try:
        yield prefix
    finally:
        for leftover in staging.glob(f"{prefix.stem}*"):
            leftover.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphaned_staging(staging: Path) -> list[Path]:
    """Delete staging files whose writing process no longer exists."""
    removed: list[Path] = []
    for leftover in staging.glob("ingest-*"):
        owner = leftover.name.split("-")[1]
        if owner.isdigit() and not _process_alive(int(owner)):
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


def add_dataset(
    workspace: Workspace,
    repository: DatasetRepository,
    path: Path,
    name: str,
    options: CheckOptions | None = None,
    *,
    strict: bool = False,
    progress: ProgressCallback | None = None,
    created_at: datetime | None = None,
) -> AddOutcome:
    validate_name(name)
    path = Path(path)
    sniff_format(path)
    sha256 = file_sha256(path)
    try:
        existing = repository.version_with_hash(name, sha256)
    except NotFoundError:
        existing = None
    if existing is not None:
        return AddOutcome(existing, created=False, report=None)
    with _staging_area(workspace) as staging_prefix:
        report = check_file(
            path,
            options or CheckOptions(),
            stage_rows_to=staging_prefix,
            progress=progress,
            sha256=sha256,
        )
        if strict and report.error_count:
            raise ChecksFailed(
                f"{path}: {report.error_count} error finding(s); --strict refuses the file. "
                f"Run `ftod data check {path}` to see them."
            )
        if progress is not None:
            progress("storing", 0, None)
        version = repository.add_version(
            name,
            sha256=report.sha256,
            source_path=str(path.resolve()),
            source_format=report.source_format,
            rows_total=report.rows,
            rows_valid=report.valid_rows,
            errors=report.error_count,
            warnings=report.warning_count,
            token_counting=report.token_counting,
            max_seq_len=report.max_seq_len,
            summary=report.summary,
            examples_parquet=report.staged_files,
            findings=[to_store(f) for f in report.findings],
            created_at=created_at,
        )
    return AddOutcome(version, created=True, report=report)


def export_dataset(
    repository: DatasetRepository,
    ref: str,
    output: Path | None,
    split: str | None = None,
    *,
    overwrite: bool = True,
) -> tuple[VersionRecord, int]:
    """Write the valid rows (optionally one split of the latest split plan) as chat JSONL.

    Written to a temporary file and renamed, so a crash never leaves half an export; an
    existing `output` is replaced only with `overwrite` (see core.safefiles.output_file).
    """
    version = repository.version(ref)
    split_id: int | None = None
    if split is not None:
        splits = repository.splits(version.version_id)
        if not splits:
            raise NotFoundError(
                f"{version.ref} has no splits yet; run `ftod data split {version.ref}` first"
            )
        if split not in ("train", "val", "test"):
            raise InputError(f"--split {split!r}: expected train, val or test")
        split_id = splits[-1].split_id
    rows = repository.iter_export_rows(version.version_id, split_id, split)
    count = 0
    if output is None:
        import sys

        for _line, messages, metadata, tools in rows:
            sys.stdout.write(_export_line(messages, metadata, tools))
            count += 1
        return version, count
    with output_file(Path(output), overwrite=overwrite) as sink:
        for _line, messages, metadata, tools in rows:
            sink.write(_export_line(messages, metadata, tools).encode("utf-8"))
            count += 1
    return version, count


def _export_line(messages: str, metadata: str, tools: str | None) -> str:
    record: dict[str, Any] = {"messages": orjson.loads(messages)}
    metadata_value = orjson.loads(metadata) if metadata else {}
    if metadata_value:
        record["metadata"] = metadata_value
    if tools:
        record["tools"] = orjson.loads(tools)
    return orjson.dumps(record).decode() + "\n"


@dataclass(frozen=True)
class SplitOutcome:
    version: VersionRecord
    split: SplitRecord
    findings: list[Finding]


def split_dataset(
    repository: DatasetRepository,
    ref: str,
    *,
    val: float,
    test: float,
    seed: int,
    group_by: str | None = None,
    stratify: str | None = None,
    near_dup_threshold: float | None = None,
    created_at: datetime | None = None,
) -> SplitOutcome:
    from core.checks.minhash import DEFAULT_THRESHOLD

    validate_field_names(group_by, stratify)
    version = repository.version(ref)
    fields = [f for f in (group_by, stratify) if f is not None]
    columns = repository.split_columns(version.version_id, fields)
    plan = plan_split(
        columns,
        val=val,
        test=test,
        seed=seed,
        group_by=group_by,
        stratify=stratify,
        near_dup_threshold=near_dup_threshold or DEFAULT_THRESHOLD,
    )
    record = repository.add_split(
        version.version_id,
        seed=seed,
        val_fraction=val,
        test_fraction=test,
        group_by=group_by,
        stratify=stratify,
        manifest=plan.manifest,
        lines=plan.lines,
        assignments=plan.assignments,
        findings=[to_store(f) for f in plan.findings],
        created_at=created_at,
    )
    return SplitOutcome(version, record, plan.findings)
