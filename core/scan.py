"""The full data check of one file: per-row format checks while streaming, then the
cross-row checks (duplicates, near-duplicates, contradictions, leakage) and summaries.

`check_file` is what `ftod data check` runs; `ftod data add` runs the same scan with a
`RowSink` that receives the rows to store, so the two can never disagree.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from core.checks import minhash
from core.checks.pii import KIND_LABELS, find_pii
from core.conversation import SYSTEM_ROLES, Conversation, collapse_whitespace, parse_row
from core.findings import Finding, OtherRef, PiiSpan, Severity
from core.source import SourceRow, file_sha256, iter_jsonl, iter_parquet, sniff_format
from core.summary import SummaryBuilder
from core.tokens import DEFAULT_MAX_SEQ_LEN, TokenCounter, make_counter
from store.errors import InputError

ProgressCallback = Callable[[str, int, int | None], None]
"""progress(stage, done, total): total is None when unknown."""

# Outputs sharing less than this much of their text are "materially different".
CONTRADICTION_MAX_OUTPUT_SIMILARITY = 0.5
# Inputs at least this similar count as "the same question" for contradictions, provided
# they also mention the same numbers and identifiers: "order #4821" and "order #9913" are
# different questions however alike the rest of the text is.
CONTRADICTION_MIN_INPUT_SIMILARITY = 0.75
# An exact-input leak needs an input this long, so "hi" in both files is not a leak.
LEAKAGE_MIN_INPUT_CHARS = 16
PII_ERROR_KINDS = frozenset({"secret", "payment_card", "us_ssn", "iban"})
_INPUT_NOISE = re.compile(r"[^\w\s]+")
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


class RowSink(Protocol):
    """Receives rows to store, in batches of column lists (see STORED_COLUMNS)."""

    def write_batch(self, columns: dict[str, list[Any]]) -> None: ...


STORED_COLUMNS: tuple[str, ...] = (
    "line",
    "valid",
    "raw",
    "messages",
    "metadata",
    "tools",
    "system_text",
    "user_text",
    "assistant_text",
    "label",
    "slice",
    "n_turns",
    "total_tokens",
    "assistant_tokens",
    "content_hash",
)
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
    return collapse_whitespace(_INPUT_NOISE.sub(" ", text.lower()))


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def canonical_key(conversation: Conversation) -> bytes:
    """Identity of a conversation after whitespace normalisation (exact duplicates)."""
    parts = [
        message["role"] + "\x1e" + " ".join(text.split())
        for message, text in zip(conversation.messages, conversation.texts, strict=True)
    ]
    return _digest("\x1f".join(parts))


def split_texts(conversation: Conversation) -> tuple[str, str, str]:
    """(system, user, assistant) texts: the derived columns every other check uses."""
    system: list[str] = []
    user: list[str] = []
    assistant: list[str] = []
    for message, text in zip(conversation.messages, conversation.texts, strict=True):
        role = message["role"]
        if role in SYSTEM_ROLES:
            system.append(text)
        elif role == "user":
            user.append(text)
        elif role == "assistant":
            assistant.append(text)
    return "\n".join(system), "\n".join(user), "\n".join(assistant)


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
    spans: list[PiiSpan] = []
    for index, text in enumerate(conversation.texts):
        for match in find_pii(text):
            spans.append(PiiSpan(index, match.start, match.end, match.kind, match.detail))
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
        self,
        path: Path,
        options: CheckOptions,
        counter: TokenCounter,
        sink: RowSink | None,
        progress: ProgressCallback | None,
    ) -> None:
        self.path = path
        self.options = options
        self.counter = counter
        self.sink = sink
        self.progress = progress
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

        system, user, assistant = split_texts(conversation)
        total_tokens, assistant_tokens = self.counter.count(
            conversation.messages, conversation.texts
        )
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
        key = canonical_key(conversation)
        self.parsed.lines.append(row.line)
        self.parsed.exact_keys.append(key)
        self.parsed.dialogs.append(dialog_text(user, assistant))
        self.parsed.user_lengths.append(len(user))
        self.parsed.labels.append(label)
        if row_is_valid:
            self.valid_rows += 1
        self.summary.add_conversation(
            conversation, total_tokens, assistant_tokens, label, slice_name, has_system=bool(system)
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
    inputs = [normalize_input(parsed.user_text(i)) for i in range(count)]
    by_input: dict[str, list[int]] = defaultdict(list)
    for index, text in enumerate(inputs):
        if text:
            by_input[text].append(index)
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
    near_inputs = minhash.near_duplicate_pairs(
        inputs,
        CONTRADICTION_MIN_INPUT_SIMILARITY,
        progress=_report_progress(progress, "similar questions"),
    )
    del inputs
    candidate_pairs.extend(
        (i, j)
        for i, j, _ in near_inputs
        if identifiers(parsed.user_text(i)) == identifiers(parsed.user_text(j))
    )
    for first, second in candidate_pairs:
        label_a, label_b = parsed.labels[first], parsed.labels[second]
        labels_differ = label_a is not None and label_b is not None and label_a != label_b
        if exact_group_of[first] == exact_group_of[second] and not labels_differ:
            continue
        answers_similarity = minhash.jaccard(
            parsed.assistant_text(first), parsed.assistant_text(second)
        )
        if labels_differ or answers_similarity < CONTRADICTION_MAX_OUTPUT_SIMILARITY:
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

    near_pairs = minhash.near_duplicate_pairs(
        parsed.dialogs, threshold, progress=_report_progress(progress, "near-duplicates")
    )
    kept = [
        (i, j)
        for i, j, _ in near_pairs
        if exact_group_of[i] != exact_group_of[j]
        and (min(i, j), max(i, j)) not in contradiction_pairs
    ]
    groups = minhash.group_pairs(count, kept)
    group_of: dict[int, int] = {m: g for g, members in enumerate(groups) for m in members}
    lowest_similarity: dict[int, float] = {}
    for i, j, similarity in near_pairs:
        group = group_of.get(i)
        if group is not None and group_of.get(j) == group:
            lowest_similarity[group] = min(similarity, lowest_similarity.get(group, 1.0))
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
    other_inputs: dict[str, list[int]] = defaultdict(list)
    for index in range(len(other.lines)):
        text = normalize_input(other.user_text(index))
        if len(text) >= LEAKAGE_MIN_INPUT_CHARS:
            other_inputs[text].append(index)
    for index, key in enumerate(parsed.exact_keys):
        matches[index].update(other_exact.get(key, ()))
        text = normalize_input(parsed.user_text(index))
        if len(text) >= LEAKAGE_MIN_INPUT_CHARS:
            matches[index].update(other_inputs.get(text, ()))
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


def _iter_source(path: Path, source_format: str, progress: ProgressCallback | None) -> Any:
    if source_format == "parquet":
        return iter_parquet(
            path, None if progress is None else lambda n: progress("reading", n, None)
        )
    total = path.stat().st_size
    return iter_jsonl(path, None if progress is None else lambda n: progress("reading", n, total))


def scan_rows(
    path: Path,
    options: CheckOptions,
    counter: TokenCounter,
    sink: RowSink | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[_Scanner, str]:
    source_format = sniff_format(path)
    scanner = _Scanner(path, options, counter, sink, progress)
    for row in _iter_source(path, source_format, progress):
        scanner.add(row)
    scanner.finish_rows()
    if scanner.rows == 0:
        raise InputError(f"{path} holds no rows (only blank lines)")
    if not scanner.parsed.lines:
        first = next((f for f in scanner.findings), None)
        detail = f" First problem, line {first.lines[0]}: {first.message}." if first else ""
        raise InputError(
            f"{path}: none of its {scanner.rows} rows is a usable chat example "
            f'(JSONL of {{"messages": [...]}} or prompt/completion expected).{detail}'
        )
    return scanner, source_format


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
    options: CheckOptions = CheckOptions(),
    *,
    sink: RowSink | None = None,
    progress: ProgressCallback | None = None,
) -> CheckReport:
    """Run every check on `path` (and against `options.against`)."""
    _check_options(options)
    path = Path(path)
    source_format = sniff_format(path)
    for other in options.against:
        sniff_format(Path(other))
    counter = make_counter(options.tokenizer_dir)
    sha256 = file_sha256(path)
    scanner, source_format = scan_rows(path, options, counter, sink, progress)
    findings = scanner.findings
    findings.extend(duplicate_findings(scanner.parsed, options.near_dup_threshold, progress))
    for other_path in options.against:
        other_scanner, _ = scan_rows(Path(other_path), options, counter)
        findings.extend(
            leakage_findings(
                scanner.parsed, other_scanner.parsed, str(other_path), options.near_dup_threshold
            )
        )
    findings.sort(key=lambda f: (f.lines[0] if f.lines else 0, f.check))
    summary = scanner.summary.build(findings, scanner.rows, scanner.valid_rows, counter.label)
    return CheckReport(
        path=str(path),
        sha256=sha256,
        source_format=source_format,
        rows=scanner.rows,
        valid_rows=scanner.valid_rows,
        token_counting=counter.label,
        max_seq_len=options.max_seq_len,
        findings=findings,
        summary=summary,
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
        parsed.lines.append(line)
        parsed.exact_keys.append(bytes.fromhex(content_hash))
        parsed.dialogs.append(dialog_text(user, assistant))
        parsed.user_lengths.append(len(user))
        parsed.labels.append(label)
    return parsed
