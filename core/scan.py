"""The full data check of one file: per-row format checks while streaming, then the
cross-row checks (duplicates, near-duplicates, contradictions, leakage) and summaries.

`check_file` is what `ftod data check` runs; `ftod data add` runs the same scan and also
stages the rows in Parquet for the store, so the two can never disagree. Large JSONL files
are scanned by worker processes over newline-aligned byte ranges.
"""

from __future__ import annotations

import hashlib
import os
import re
import string
import sys
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from core.checks import minhash
from core.checks.pii import KIND_LABELS, find_pii
from core.conversation import SYSTEM_ROLES, Conversation, parse_row
from core.findings import Finding, OtherRef, PiiSpan, Severity
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

ProgressCallback = Callable[[str, int, int | None], None]
"""progress(stage, done, total): total is None when unknown."""

# Outputs sharing less than this much of their text are "materially different".
CONTRADICTION_MAX_OUTPUT_SIMILARITY = 0.5
# Inputs at least this similar count as "the same question" for contradictions, provided
# they also mention the same numbers and identifiers: "order #4821" and "order #9913" are
# different questions however alike the rest of the text is.
CONTRADICTION_MIN_INPUT_SIMILARITY = 0.75
# LSH misses about a third of the pairs that sit right at its threshold, so questions are
# searched at a lower one and then filtered on their exact similarity.
_INPUT_SEARCH_THRESHOLD = 0.75
# An exact-input leak needs an input this long, so "hi" in both files is not a leak.
LEAKAGE_MIN_INPUT_CHARS = 16
_PII_SEPARATOR = "\x00"
PII_ERROR_KINDS = frozenset({"secret", "payment_card", "us_ssn", "iban"})
_INPUT_TRANSLATION = str.maketrans(
    {**{char: " " for char in string.punctuation if char != "'"}, "'": None, "\u2019": None}
)
_IDENTIFIER = re.compile(r"\S*\d\S*")


def identifiers(text: str) -> list[str]:
    """Tokens that contain a digit (order numbers, amounts, versions), sorted."""
    return sorted(token.strip(".,;:!?()[]{}\"'") for token in _IDENTIFIER.findall(text))


@dataclass(frozen=True, slots=True)
class CheckOptions:
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN
    tokenizer_dir: Path | None = None
    near_dup_threshold: float = minhash.DEFAULT_THRESHOLD
    against: tuple[Path, ...] = ()
    workers: int | None = None  # processes for the row scan; None: by file size and CPUs


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
        }


def normalize_input(text: str) -> str:
    """The question as compared across rows: case, punctuation and spacing ignored."""
    # str.translate is a single C pass; a regex substitution here cost seconds per million.
    return " ".join(text.lower().translate(_INPUT_TRANSLATION).split())


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def dialog_text(user_text: str, assistant_text: str) -> str:
    """What near-duplicate detection compares: the non-system turns.

    Never the system prompt, which most rows share and would make every row look alike.
    """
    return f"{user_text}\n{assistant_text}"


@dataclass
class _ParsedRows:
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
        self.input_keys.append(_digest(question) if question else b"")

    def extend(self, other: _ParsedRows) -> None:
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


def _metadata_string(metadata: dict[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # a list of tags: the first is the primary slice
        return str(value[0]) if value else None
    return str(value)


def _pii_finding(line: int, conversation: Conversation) -> Finding | None:
    # One scan of the whole row (find_pii has a fixed cost per call); NUL separates the
    # messages because no PII pattern accepts it, so no match spans two messages.
    texts = conversation.texts
    matches = find_pii(_PII_SEPARATOR.join(texts))
    if not matches:
        return None
    starts: list[int] = []
    offset = 0
    for text in texts:
        starts.append(offset)
        offset += len(text) + len(_PII_SEPARATOR)
    spans: list[PiiSpan] = []
    for match in matches:
        index = bisect_right(starts, match.start) - 1
        start = match.start - starts[index]
        end = match.end - starts[index]
        if end <= len(texts[index]):
            spans.append(PiiSpan(index, start, end, match.kind, match.detail))
    if not spans:
        return None
    by_message: dict[int, list[str]] = defaultdict(list)
    for span in spans:
        label = span.detail or KIND_LABELS.get(span.kind, span.kind)
        if label not in by_message[span.message_index]:
            by_message[span.message_index].append(label)
    where = "; ".join(
        f"{', '.join(labels)} in message {index + 1} ({conversation.messages[index]['role']})"
        for index, labels in sorted(by_message.items())
    )
    severity: Severity = "error" if any(s.kind in PII_ERROR_KINDS for s in spans) else "warning"
    return Finding(
        "pii", severity, (line,), f"personal data or secret: {where}", spans=tuple(spans)
    )


class _Scanner:
    def __init__(
        self, options: CheckOptions, counter: TokenCounter, sink: ParquetRowSink | None
    ) -> None:
        self.options = options
        self.counter = counter
        self.sink = sink
        self.findings: list[Finding] = []
        self.parsed = _ParsedRows()
        self.summary = SummaryBuilder()
        self.rows = 0
        self.valid_rows = 0
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
            self.findings.append(Finding("invalid_json", "error", (row.line,), row.error))
            self._store({"line": row.line, "valid": False, "raw": row.raw})
            return
        conversation, problems = parse_row(row.value)
        row_is_valid = conversation is not None and not any(
            problem.severity == "error" for problem in problems
        )
        for problem in problems:
            self.findings.append(
                Finding(problem.check, problem.severity, (row.line,), problem.message)
            )
        if conversation is None:
            self._store({"line": row.line, "valid": False, "raw": row.raw})
            return

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
        key = _digest("\x1f".join(key_parts))
        if self.counter.exact:
            total_tokens, assistant_tokens = self.counter.count(
                conversation.messages, conversation.texts
            )
        else:
            total_tokens, assistant_tokens = estimated_total, estimated_assistant
        if total_tokens > self.options.max_seq_len:
            how = "" if self.counter.exact else " (estimated)"
            self.findings.append(
                Finding(
                    "too_long",
                    "warning",
                    (row.line,),
                    f"{total_tokens} tokens{how} > max_seq_len {self.options.max_seq_len}: "
                    "training would truncate this row",
                )
            )
        pii = _pii_finding(row.line, conversation)
        if pii is not None:
            self.findings.append(pii)

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
                "messages": orjson.dumps(conversation.messages, default=str).decode(),
                "metadata": orjson.dumps(conversation.metadata, default=str).decode(),
                "tools": None
                if conversation.tools is None
                else orjson.dumps(conversation.tools, default=str).decode(),
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

    def finish_rows(self) -> None:
        self._flush()


# Boilerplate: a segment (line or sentence) of at least this many characters found in at
# least this share of rows (an instruction template, a sign-off every answer carries). Like
# the shared system prompt, it says nothing about whether two examples are the same.
BOILERPLATE_MIN_CHARS = 30
BOILERPLATE_MIN_SHARE = 0.2
BOILERPLATE_SAMPLE_ROWS = 20_000
_SEGMENT_BREAK = re.compile(r"\n+|(?<=[.!?:;])\s+")


def boilerplate_stripper(texts: Sequence[str]) -> Callable[[str], str] | None:
    """A function that removes the segments most rows share, or None when there are none.

    Counted on an evenly spaced sample, so the cost is fixed however large the dataset.
    """
    if len(texts) < 10:
        return None
    step = max(1, len(texts) // BOILERPLATE_SAMPLE_ROWS)
    sample = texts[::step]
    counts: Counter[str] = Counter()
    for text in sample:
        counts.update(
            {
                segment.strip()
                for segment in _SEGMENT_BREAK.split(text)
                if len(segment.strip()) >= BOILERPLATE_MIN_CHARS
            }
        )
    needed = max(5, BOILERPLATE_MIN_SHARE * len(sample))
    frequent = sorted((s for s, c in counts.items() if c >= needed), key=len, reverse=True)
    if not frequent:
        return None

    def strip(text: str) -> str:
        # Literal substring tests and replaces run in C; a regex alternation of the same
        # segments costs several times more over a million rows.
        original = text
        for segment in frequent:
            if segment in text:
                text = text.replace(segment, " ")
        if text is original:
            return original
        return text.strip() or original  # a row made only of boilerplate keeps its text

    return strip


def _report_progress(
    progress: ProgressCallback | None, stage: str
) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


def duplicate_findings(
    parsed: _ParsedRows, threshold: float, progress: ProgressCallback | None = None
) -> list[Finding]:
    """exact_duplicate, near_duplicate and contradiction over the parsed rows."""
    findings: list[Finding] = []
    count = len(parsed.lines)

    exact_groups: dict[bytes, list[int]] = defaultdict(list)
    for index, key in enumerate(parsed.exact_keys):
        exact_groups[key].append(index)
    exact_group_of = list(range(count))
    for members in exact_groups.values():
        if len(members) > 1:
            for member in members:
                exact_group_of[member] = members[0]
            findings.append(
                Finding(
                    "exact_duplicate",
                    "warning",
                    tuple(parsed.lines[m] for m in members),
                    f"{len(members)} identical rows (after whitespace normalisation); "
                    f"keep one (first at line {parsed.lines[members[0]]})",
                )
            )
    del exact_groups

    # Contradictions: the same question (exactly, or nearly) with materially different answers.
    contradiction_pairs: set[tuple[int, int]] = set()
    by_input: dict[bytes, list[int]] = defaultdict(list)
    for index, input_key in enumerate(parsed.input_keys):
        if input_key:
            by_input[input_key].append(index)
    candidate_pairs: list[tuple[int, int]] = []
    for members in by_input.values():
        if len(members) > 1:
            # Compare each row with the group's distinct answers only (groups can be large).
            # Identical rows differ only in their label, if at all: one row per
            # (exact group, label) stands for the rest.
            representatives: list[int] = []
            seen: set[tuple[int, str | None]] = set()
            for member in members:
                identity = (exact_group_of[member], parsed.labels[member])
                if identity in seen:
                    continue
                seen.add(identity)
                candidate_pairs.extend((r, member) for r in representatives[:50])
                representatives.append(member)
    del by_input
    # MinHash normalises case, punctuation and spacing itself, vectorised.
    questions = [parsed.user_text(i) for i in range(count)]
    strip_questions = boilerplate_stripper(questions)
    if strip_questions is not None:
        questions = [strip_questions(text) for text in questions]
    near_inputs = minhash.near_duplicate_pairs(
        questions,
        _INPUT_SEARCH_THRESHOLD,
        progress=_report_progress(progress, "similar questions"),
    )
    candidate_pairs.extend(
        (i, j)
        for i, j, similarity in near_inputs
        if similarity >= CONTRADICTION_MIN_INPUT_SIMILARITY
        and identifiers(questions[i]) == identifiers(questions[j])
    )
    del questions
    to_compare: list[tuple[int, int]] = []
    for first, second in candidate_pairs:
        label_a, label_b = parsed.labels[first], parsed.labels[second]
        labels_differ = label_a is not None and label_b is not None and label_a != label_b
        if labels_differ:
            contradiction_pairs.add((min(first, second), max(first, second)))
        elif exact_group_of[first] != exact_group_of[second]:
            to_compare.append((first, second))
    if to_compare:
        # Answers are compared in one vectorised pass over just the rows involved.
        involved = sorted({index for pair in to_compare for index in pair})
        position = {index: offset for offset, index in enumerate(involved)}
        answers = [parsed.assistant_text(index) for index in involved]
        similarities = minhash.jaccard_pairs(
            answers, [(position[a], position[b]) for a, b in to_compare]
        )
        for (first, second), similarity in zip(to_compare, similarities.tolist(), strict=True):
            if similarity < CONTRADICTION_MAX_OUTPUT_SIMILARITY:
                contradiction_pairs.add((min(first, second), max(first, second)))
    for group in minhash.group_pairs(count, contradiction_pairs):
        lines = tuple(parsed.lines[m] for m in group)
        labels = sorted({label for m in group if (label := parsed.labels[m]) is not None})
        label_note = f"; labels {', '.join(labels)}" if len(labels) > 1 else ""
        findings.append(
            Finding(
                "contradiction",
                "error",
                lines,
                f"{len(group)} rows ask the same question but answer it differently{label_note}",
            )
        )

    dialogs: Sequence[str] = parsed.dialogs
    strip_dialogs = boilerplate_stripper(dialogs)
    if strip_dialogs is not None:
        dialogs = [strip_dialogs(text) for text in dialogs]
    near_pairs = minhash.near_duplicate_pairs(
        dialogs, threshold, progress=_report_progress(progress, "near-duplicates")
    )
    # A contradiction whose dialogs are also near-identical (long question, short
    # opposite answers) is both, and is reported under both checks.
    kept = [(i, j) for i, j, _ in near_pairs if exact_group_of[i] != exact_group_of[j]]
    groups = minhash.group_pairs(count, kept)
    group_of: dict[int, int] = {m: g for g, members in enumerate(groups) for m in members}
    lowest_similarity: dict[int, float] = {}
    for i, j, similarity in near_pairs:
        group_index = group_of.get(i)
        if group_index is not None and group_of.get(j) == group_index:
            lowest_similarity[group_index] = min(
                similarity, lowest_similarity.get(group_index, 1.0)
            )
    for group_index, members in enumerate(groups):
        # A group made only of exact copies is reported once, as exact_duplicate.
        if len({exact_group_of[m] for m in members}) < 2:
            continue
        lowest = lowest_similarity.get(group_index)
        shown = f" (similarity {lowest:.2f}+)" if lowest is not None else ""
        findings.append(
            Finding(
                "near_duplicate",
                "warning",
                tuple(parsed.lines[m] for m in members),
                f"{len(members)} rows are near-identical{shown}; keep one",
            )
        )
    return findings


def leakage_findings(
    parsed: _ParsedRows,
    other: _ParsedRows,
    other_label: str,
    threshold: float,
) -> list[Finding]:
    """Rows of `parsed` that occur exactly or nearly in `other` (one finding per leaking row)."""
    matches: dict[int, set[int]] = defaultdict(set)
    other_exact: dict[bytes, list[int]] = defaultdict(list)
    for index, key in enumerate(other.exact_keys):
        other_exact[key].append(index)
    other_inputs: dict[bytes, list[int]] = defaultdict(list)
    for index, input_key in enumerate(other.input_keys):
        if input_key and other.user_lengths[index] >= LEAKAGE_MIN_INPUT_CHARS:
            other_inputs[input_key].append(index)
    for index, key in enumerate(parsed.exact_keys):
        matches[index].update(other_exact.get(key, ()))
        input_key = parsed.input_keys[index]
        if input_key and parsed.user_lengths[index] >= LEAKAGE_MIN_INPUT_CHARS:
            matches[index].update(other_inputs.get(input_key, ()))
    for query, corpus_index, _ in minhash.cross_pairs(parsed.dialogs, other.dialogs, threshold):
        matches[query].add(corpus_index)
    findings = []
    for index in sorted(i for i, found in matches.items() if found):
        other_lines = tuple(sorted(other.lines[o] for o in matches[index]))
        shown = ", ".join(map(str, other_lines[:5])) + ("…" if len(other_lines) > 5 else "")
        findings.append(
            Finding(
                "leakage",
                "error",
                (parsed.lines[index],),
                f"this row also occurs (exactly or nearly) in {other_label} at line {shown}",
                other=OtherRef(other_label, other_lines),
            )
        )
    return findings


# Files smaller than this are scanned in-process: a worker costs ~0.5 s to start.
PARALLEL_MIN_BYTES = 24 * 1024 * 1024
MAX_SCAN_WORKERS = 4


@dataclass
class ScanResult:
    findings: list[Finding]
    parsed: _ParsedRows
    summary: SummaryBuilder
    rows: int
    valid_rows: int
    staged_files: list[Path]


def _merge(results: list[ScanResult]) -> ScanResult:
    merged = results[0]
    for part in results[1:]:
        merged.findings.extend(part.findings)
        merged.parsed.extend(part.parsed)
        merged.summary.merge(part.summary)
        merged.rows += part.rows
        merged.valid_rows += part.valid_rows
        merged.staged_files.extend(part.staged_files)
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
    findings.extend(duplicate_findings(scanned.parsed, options.near_dup_threshold, progress))
    for other_file in options.against:
        other, _ = scan_rows(Path(other_file), options, counter=counter)
        findings.extend(
            leakage_findings(
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
    )


def parsed_rows_from_texts(
    lines: Sequence[int],
    content_hashes: Sequence[str],
    user_texts: Sequence[str],
    assistant_texts: Sequence[str],
    labels: Sequence[str | None],
) -> _ParsedRows:
    """Rebuild the compact row state from stored columns (split leakage runs on the store)."""
    parsed = _ParsedRows()
    for line, content_hash, user, assistant, label in zip(
        lines, content_hashes, user_texts, assistant_texts, labels, strict=True
    ):
        parsed.append(line, bytes.fromhex(content_hash), user, assistant, label)
    return parsed
