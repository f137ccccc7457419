"""The full data check of one file: per-row checks while streaming, then the cross-row
checks (duplicates, near-duplicates, contradictions, leakage) and summaries. Which checks
run, and in what order, is core/checks/registry.py.

`check_file` is what `ftod data check` runs; `ftod data add` runs the same scan and also
stages the rows in Parquet for the store, so the two can never disagree. Large JSONL files
are scanned by worker processes over newline-aligned byte ranges.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from core.checks import invalid_schema, minhash, volatile_fact
from core.checks.base import SYSTEM_ROLES, DatasetContext, ParsedRows, RowContext, digest
from core.checks.base import ProgressCallback as ProgressCallback
from core.checks.registry import AGAINST_CHECKS, DATASET_CHECKS, ROW_CHECKS
from core.conversation import parse_row
from core.findings import Finding
from core.source import (
    ByteRange,
    SourceRow,
    file_sha256,
    iter_jsonl,
    iter_parquet,
    sniff_format,
    split_ranges,
)
from core.staging import STORED_COLUMNS, ParquetRowSink
from core.summary import SummaryBuilder
from core.tokens import (
    DEFAULT_MAX_SEQ_LEN,
    TokenCounter,
    estimated_message_tokens,
    is_loss_bearing,
    make_counter,
)
from store.errors import InputError


@dataclass(frozen=True, slots=True)
class CheckOptions:
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN
    tokenizer_dir: Path | None = None
    near_dup_threshold: float = minhash.DEFAULT_THRESHOLD
    against: tuple[Path, ...] = ()
    workers: int | None = None  # processes for the row scan; None: by file size and CPUs
    volatile_terms: tuple[str, ...] = ()  # the user's own volatile_fact terms (plan names)


SINK_BATCH_ROWS = 20_000


@dataclass
class CheckReport:
    path: str
    sha256: str
    source_format: str
    rows: int
    valid_rows: int
    token_counting: str
    max_seq_len: int
    findings: list[Finding]
    summary: dict[str, Any]
    staged_files: list[Path] = field(default_factory=list)
    knowledge_audit: volatile_fact.KnowledgeAudit | None = None

    @property
    def error_count(self) -> int:
        return sum(1 for finding in self.findings if finding.severity == "error")

    @property
    def warning_count(self) -> int:
        return sum(1 for finding in self.findings if finding.severity == "warning")

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rows": self.rows,
            "sha256": self.sha256,
            "format": self.source_format,
            "valid_rows": self.valid_rows,
            "token_counting": self.token_counting,
            "max_seq_len": self.max_seq_len,
            "counts": {"errors": self.error_count, "warnings": self.warning_count},
            "findings": [finding.as_json() for finding in self.findings],
            "summary": self.summary,
            **(
                {"knowledge_audit": self.knowledge_audit.as_json()}
                if self.knowledge_audit is not None
                else {}
            ),
        }


def _metadata_string(metadata: dict[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # a list of tags: the first is the primary slice
        return str(value[0]) if value else None
    return str(value)


class _Scanner:
    def __init__(
        self, options: CheckOptions, counter: TokenCounter, sink: ParquetRowSink | None
    ) -> None:
        self.options = options
        self.counter = counter
        self.sink = sink
        self.findings: list[Finding] = []
        self.parsed = ParsedRows()
        self.summary = SummaryBuilder()
        self.rows = 0
        self.valid_rows = 0
        self.audit = volatile_fact.AuditBuilder.for_terms(options.volatile_terms)
        self._batch: dict[str, list[Any]] = {name: [] for name in STORED_COLUMNS}

    def _flush(self) -> None:
        if self.sink is not None and self._batch["line"]:
            self.sink.write_batch(self._batch)
        self._batch = {name: [] for name in STORED_COLUMNS}

    def _store(self, values: dict[str, Any]) -> None:
        if self.sink is None:
            return
        for name in STORED_COLUMNS:
            self._batch[name].append(values.get(name))
        if len(self._batch["line"]) >= SINK_BATCH_ROWS:
            self._flush()

    def add(self, row: SourceRow) -> None:
        if row.error == "":  # blank line: not a row
            self.summary.blank_lines += 1
            return
        self.rows += 1
        if row.error is not None:
            self._reject(row, Finding(row.error_check, "error", (row.line,), row.error))
            return
        conversation, problems = parse_row(row.value)
        if conversation is None:
            for problem in problems:
                self.findings.append(
                    Finding(problem.check, problem.severity, (row.line,), problem.message)
                )
            self._store({"line": row.line, "valid": False, "raw": row.raw})
            return
        # Encoded for the store, and to catch values orjson reads but cannot store as read.
        messages_json = orjson.dumps(conversation.messages, default=str)
        metadata_json = orjson.dumps(conversation.metadata, default=str)
        tools_json = (
            None if conversation.tools is None else orjson.dumps(conversation.tools, default=str)
        )
        if invalid_schema.may_hold_oversized_integer(metadata_json) or (
            tools_json is not None and invalid_schema.may_hold_oversized_integer(tools_json)
        ):
            oversized = invalid_schema.oversized_integer_problem(row.raw)
            if oversized is not None:
                self._reject(row, Finding("invalid_schema", "error", (row.line,), oversized))
                return
        row_is_valid = not any(problem.severity == "error" for problem in problems)
        for problem in problems:
            self.findings.append(
                Finding(problem.check, problem.severity, (row.line,), problem.message)
            )

        # One pass over the messages for texts, identity, roles and estimated tokens:
        # at a million rows every extra walk over the turns costs seconds.
        system_parts: list[str] = []
        user_parts: list[str] = []
        assistant_parts: list[str] = []
        key_parts: list[str] = []
        roles: list[str] = []
        estimated_total = 0
        estimated_assistant = 0
        has_tool_calls = False
        for message, text in zip(conversation.messages, conversation.texts, strict=True):
            role = message["role"]
            roles.append(role)
            key_parts.append(role + "\x1e" + " ".join(text.split()))
            tokens = estimated_message_tokens(text)
            estimated_total += tokens
            if role == "user":
                user_parts.append(text)
            elif role == "assistant":
                assistant_parts.append(text)
                if is_loss_bearing(message):
                    estimated_assistant += tokens
                if "tool_calls" in message or "function_call" in message:
                    has_tool_calls = True
            elif role in SYSTEM_ROLES:
                system_parts.append(text)
        system = "\n".join(system_parts)
        user = "\n".join(user_parts)
        assistant = "\n".join(assistant_parts)
        key = digest("\x1f".join(key_parts))
        if self.counter.exact:
            total_tokens, assistant_tokens = self.counter.count(
                conversation.messages, conversation.texts
            )
        else:
            total_tokens, assistant_tokens = estimated_total, estimated_assistant
        context = RowContext(
            row.line, conversation, total_tokens, self.counter.exact, self.options.max_seq_len
        )
        for check in ROW_CHECKS:
            self.findings.extend(check.find(context))
        self.findings.extend(
            self.audit.add_turns(
                row.line,
                [text for text in assistant_parts if text],
                volatile_fact.row_date(row.value, conversation.metadata),
            )
        )

        label = _metadata_string(conversation.metadata, "label")
        slice_name = _metadata_string(conversation.metadata, "slice")
        self.parsed.append(row.line, key, user, assistant, label)
        if row_is_valid:
            self.valid_rows += 1
        self.summary.add_row(
            roles,
            total_tokens,
            assistant_tokens,
            label,
            slice_name,
            has_system=bool(system_parts),
            has_tool_calls=has_tool_calls,
        )
        self._store(
            {
                "line": row.line,
                "valid": row_is_valid,
                "raw": row.raw,
                "messages": messages_json.decode(),
                "metadata": metadata_json.decode(),
                "tools": None if tools_json is None else tools_json.decode(),
                "system_text": system,
                "user_text": user,
                "assistant_text": assistant,
                "label": label,
                "slice": slice_name,
                "n_turns": len(conversation.messages),
                "total_tokens": total_tokens,
                "assistant_tokens": assistant_tokens,
                "content_hash": key.hex(),
            }
        )

    def _reject(self, row: SourceRow, finding: Finding) -> None:
        """A row no other check can look at: one finding, and stored as its raw text."""
        self.findings.append(finding)
        self._store({"line": row.line, "valid": False, "raw": row.raw})

    def finish_rows(self) -> None:
        self._flush()


# Files smaller than this are scanned in-process: a worker costs ~0.5 s to start.
PARALLEL_MIN_BYTES = 24 * 1024 * 1024
MAX_SCAN_WORKERS = 4


@dataclass
class ScanResult:
    findings: list[Finding]
    parsed: ParsedRows
    summary: SummaryBuilder
    rows: int
    valid_rows: int
    staged_files: list[Path]
    audit: volatile_fact.AuditBuilder


def _merge(results: list[ScanResult]) -> ScanResult:
    merged = results[0]
    for part in results[1:]:
        merged.findings.extend(part.findings)
        merged.parsed.extend(part.parsed)
        merged.summary.merge(part.summary)
        merged.rows += part.rows
        merged.valid_rows += part.valid_rows
        merged.staged_files.extend(part.staged_files)
        merged.audit.merge(part.audit)
    return merged


def _scan_part(
    path: Path,
    source_format: str,
    options: CheckOptions,
    byte_range: ByteRange | None,
    staging_file: Path | None,
    on_bytes: Callable[[int], None] | None,
    counter: TokenCounter | None = None,
) -> ScanResult:
    sink = ParquetRowSink(staging_file) if staging_file is not None else None
    scanner = _Scanner(options, counter or make_counter(options.tokenizer_dir), sink)
    try:
        if source_format == "parquet":
            rows: Iterator[SourceRow] = iter_parquet(path, on_bytes)
        else:
            rows = iter_jsonl(path, on_bytes, byte_range)
        for row in rows:
            scanner.add(row)
        scanner.finish_rows()
    finally:
        if sink is not None:
            sink.close()
    return ScanResult(
        scanner.findings,
        scanner.parsed,
        scanner.summary,
        scanner.rows,
        scanner.valid_rows,
        [staging_file] if staging_file is not None else [],
        scanner.audit,
    )


_WORKER_PROGRESS: Any = None


def _init_worker(progress_array: Any) -> None:
    global _WORKER_PROGRESS
    _WORKER_PROGRESS = progress_array


def _scan_part_in_worker(
    index: int,
    path: Path,
    options: CheckOptions,
    byte_range: ByteRange,
    staging_file: Path | None,
) -> ScanResult:
    def on_bytes(consumed: int) -> None:
        _WORKER_PROGRESS[index] = consumed

    return _scan_part(path, "jsonl", options, byte_range, staging_file, on_bytes)


def _part_file(stage_rows_to: Path | None, index: int) -> Path | None:
    if stage_rows_to is None:
        return None
    return stage_rows_to.with_name(f"{stage_rows_to.stem}.part{index}.parquet")


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with a real stderr.

    Under Textual, sys.stderr is replaced by an object whose fileno() is -1, and the
    tracker (started on first use by spawned pools) then fails with "bad value(s) in
    fds_to_keep". Starting it once against the process's original stderr avoids that.
    """
    from multiprocessing import resource_tracker

    original = sys.__stderr__
    if original is None:
        return
    current = sys.stderr
    try:
        sys.stderr = original
        resource_tracker.ensure_running()
    finally:
        sys.stderr = current


def _scan_parallel(
    path: Path,
    options: CheckOptions,
    workers: int,
    stage_rows_to: Path | None,
    progress: ProgressCallback | None,
) -> ScanResult:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ranges = split_ranges(path, workers)
    total = path.stat().st_size
    # spawn, not fork: the TUI calls this from a thread, and forking a threaded process
    # can deadlock the child on a lock that another thread held.
    context = multiprocessing.get_context("spawn")
    _start_resource_tracker()
    progress_array = context.Array("q", len(ranges), lock=False)
    with ProcessPoolExecutor(
        len(ranges), mp_context=context, initializer=_init_worker, initargs=(progress_array,)
    ) as pool:
        futures = [
            pool.submit(
                _scan_part_in_worker,
                index,
                path,
                options,
                byte_range,
                _part_file(stage_rows_to, index),
            )
            for index, byte_range in enumerate(ranges)
        ]
        remaining = set(futures)
        while remaining:
            _, remaining = wait(remaining, timeout=0.2, return_when=FIRST_COMPLETED)
            if progress is not None:
                progress("reading", sum(progress_array), total)
        results = [future.result() for future in futures]
    if progress is not None:
        progress("reading", total, total)
    return _merge(results)


def scan_rows(
    path: Path,
    options: CheckOptions,
    *,
    counter: TokenCounter | None = None,
    stage_rows_to: Path | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[ScanResult, str]:
    """Scan every row; with `stage_rows_to`, also write the rows to store as Parquet parts."""
    source_format = sniff_format(path)
    workers = options.workers
    if workers is None:
        large = source_format == "jsonl" and path.stat().st_size >= PARALLEL_MIN_BYTES
        workers = min(os.cpu_count() or 1, MAX_SCAN_WORKERS) if large else 1
    result: ScanResult | None = None
    if workers > 1 and source_format == "jsonl":
        try:
            result = _scan_parallel(path, options, workers, stage_rows_to, progress)
        except (BrokenProcessPool, OSError, ValueError):
            # Workers could not start (a host program whose __main__ cannot be re-imported,
            # a sandbox without process spawning): scan in this process instead of failing.
            for part in range(workers):
                part_file = _part_file(stage_rows_to, part)
                if part_file is not None:
                    part_file.unlink(missing_ok=True)
    if result is None:
        total = path.stat().st_size

        def on_bytes(consumed: int) -> None:
            if progress is not None:
                progress("reading", consumed, total if source_format == "jsonl" else None)

        staging = _part_file(stage_rows_to, 0)
        result = _scan_part(path, source_format, options, None, staging, on_bytes, counter)
    if result.rows == 0:
        raise InputError(f"{path} holds no rows (only blank lines)")
    if not result.parsed.lines:
        first = min(result.findings, key=lambda f: f.lines[0], default=None)
        detail = f" First problem, line {first.lines[0]}: {first.message}." if first else ""
        raise InputError(
            f"{path}: none of its {result.rows} rows is a usable chat example "
            f'(JSONL of {{"messages": [...]}} or prompt/completion expected).{detail}'
        )
    return result, source_format


def _check_options(options: CheckOptions) -> None:
    if options.max_seq_len < 1:
        raise InputError(
            f"--max-seq-len must be a positive number of tokens, not {options.max_seq_len}"
        )
    if not 0.0 < options.near_dup_threshold <= 1.0:
        raise InputError(
            f"--near-dup-threshold must be in (0, 1], not {options.near_dup_threshold}"
        )


def check_file(
    path: Path,
    options: CheckOptions | None = None,
    *,
    stage_rows_to: Path | None = None,
    progress: ProgressCallback | None = None,
    sha256: str | None = None,
) -> CheckReport:
    """Run every check on `path` (and against `options.against`).

    `sha256` is the file's hash when the caller already computed it (`data add` does, to
    find an identical stored version before checking anything).
    """
    options = options or CheckOptions()
    _check_options(options)
    path = Path(path)
    sniff_format(path)
    for against_file in options.against:
        sniff_format(Path(against_file))
    counter = make_counter(options.tokenizer_dir)
    sha256 = sha256 or file_sha256(path)
    scanned, source_format = scan_rows(
        path,
        options,
        counter=counter,
        stage_rows_to=stage_rows_to,
        progress=progress,
    )
    findings = scanned.findings
    dataset = DatasetContext(scanned.parsed, options.near_dup_threshold, progress)
    for dataset_check in DATASET_CHECKS:
        findings.extend(dataset_check.find(dataset))
    del dataset
    for other_file in options.against:
        other, _ = scan_rows(Path(other_file), options, counter=counter)
        for against_check in AGAINST_CHECKS:
            findings.extend(
                against_check.find(
                    scanned.parsed, other.parsed, str(other_file), options.near_dup_threshold
                )
            )
    findings.sort(key=lambda f: (f.lines[0] if f.lines else 0, f.check))
    summary = scanned.summary.build(findings, scanned.rows, scanned.valid_rows, counter.label)
    return CheckReport(
        path=str(path),
        sha256=sha256,
        source_format=source_format,
        rows=scanned.rows,
        valid_rows=scanned.valid_rows,
        token_counting=counter.label,
        max_seq_len=options.max_seq_len,
        findings=findings,
        summary=summary,
        staged_files=scanned.staged_files,
        knowledge_audit=scanned.audit.build(),
    )


def parsed_rows_from_texts(
    lines: Sequence[int],
    content_hashes: Sequence[str],
    user_texts: Sequence[str],
    assistant_texts: Sequence[str],
    labels: Sequence[str | None],
) -> ParsedRows:
    """Rebuild the compact row state from stored columns (split leakage runs on the store)."""
    parsed = ParsedRows()
    for line, content_hash, user, assistant, label in zip(
        lines, content_hashes, user_texts, assistant_texts, labels, strict=True
    ):
        parsed.append(line, bytes.fromhex(content_hash), user, assistant, label)
    return parsed
