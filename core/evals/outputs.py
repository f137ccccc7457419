"""An eval set (its examples, references and slices) and outputs files read strictly against it.

An outputs file is JSONL, one object per output:

    {"line": 12, "output": "..."}      # the example's line number in the dataset's source file
    {"id": "q-17", "output": "..."}    # or the example's metadata.id (compared as text)

with optional `input_tokens`, `output_tokens`, `latency_s` and `finish_reason`; other keys are
ignored, so files written by vLLM, an API client or another harness load as they are. Every
problem in the file is collected with its line number and reported at once, and nothing is
imported unless the whole file is usable: a half-imported eval would compare silently wrong.
Examples of the eval set that have no output are allowed; they are counted and not scored.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

from core.conversation import describe_json_type
from core.source import file_sha256
from store.errors import InputError
from store.evals import EvalExampleRow, EvalOutput

MAX_LISTED_PROBLEMS = 10
OPTIONAL_FIELDS = ("input_tokens", "output_tokens", "latency_s", "finish_reason")


@dataclass(frozen=True, slots=True)
class EvalExample:
    """One example of an eval set, as scorers and comparisons see it."""

    line: int
    reference: str | None
    """The final assistant turn's text; None when the conversation does not end with one."""
    slice: str | None
    """None: the example counts in overall figures only."""
    metadata: Mapping[str, Any]
    messages: tuple[Mapping[str, Any], ...]

    def scorer_context(self) -> Mapping[str, Any]:
        """What a custom scorer receives as its `example` argument."""
        return MappingProxyType(
            {
                "line": self.line,
                "messages": [dict(message) for message in self.messages],
                "metadata": dict(self.metadata),
                "slice": self.slice,
                "reference": self.reference,
            }
        )


def _content_text(content: object) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # The text parts of a multi-part message, as the data checks read them.
        pieces = [
            part if isinstance(part, str) else part.get("text")
            for part in content
            if isinstance(part, str)
            or (isinstance(part, dict) and part.get("type", "text") in _TEXT_PART_TYPES)
        ]
        return "".join(piece for piece in pieces if isinstance(piece, str))
    return None


_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})


def reference_of(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The reference answer: the text of the last message when it is an assistant turn.

    A final assistant turn without text (a tool call only) has no reference either: there
    is nothing a text output could equal.
    """
    if not messages:
        return None
    last = messages[-1]
    if last.get("role") != "assistant":
        return None
    return _content_text(last.get("content"))


def slice_of(slice_column: str | None, metadata: Mapping[str, Any]) -> str | None:
    """`metadata.slice` (as the data checks stored it; a list counts as its first item),
    else the first of `metadata.tags` when that is a non-empty list."""
    if slice_column is not None:
        return slice_column
    tags = metadata.get("tags")
    if isinstance(tags, list) and tags and tags[0] is not None:
        return str(tags[0])
    return None


def eval_set(rows: Sequence[EvalExampleRow]) -> list[EvalExample]:
    return [
        EvalExample(
            line=row.line,
            reference=reference_of(row.messages),
            slice=slice_of(row.slice, row.metadata),
            metadata=row.metadata,
            messages=tuple(row.messages),
        )
        for row in rows
    ]


def _line_number(value: object) -> int | None:
    """A line number as JSON writers spell it: 3, 3.0 (pandas with a missing value in the
    column) or "3"; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and value >= 1:
        return value
    return None


def example_id(metadata: Mapping[str, Any]) -> str | None:
    """metadata.id as text; ids are matched as text so 17 and "17" name the same example."""
    value = metadata.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value)


@dataclass(frozen=True, slots=True)
class OutputsFile:
    path: Path
    sha256: str
    outputs: tuple[EvalOutput, ...]
    """Sorted by line."""
    keyed_by: tuple[str, ...]
    """"line" and/or "id": how the file named its examples."""
    without_output: int
    """Examples of the eval set the file gives no output for."""


def _optional_fields(record: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key in ("input_tokens", "output_tokens"):
        value = record.get(key)
        if value is None:
            values[key] = None
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            problems.append(f"{key} must be a whole number ≥ 0 or null, not {value!r}")
        else:
            values[key] = value
    latency = record.get("latency_s")
    if latency is None:
        values["latency_s"] = None
    elif (
        isinstance(latency, bool)
        or not isinstance(latency, int | float)
        or not math.isfinite(latency)
        or latency < 0
    ):
        problems.append(f"latency_s must be a number ≥ 0 or null, not {latency!r}")
    else:
        values["latency_s"] = float(latency)
    reason = record.get("finish_reason")
    if reason is not None and not isinstance(reason, str):
        problems.append(f"finish_reason must be text or null, not {describe_json_type(reason)}")
    else:
        values["finish_reason"] = reason
    return values, problems


def read_outputs(
    path: Path,
    examples: Sequence[EvalExample],
    *,
    set_name: str = "the eval set",
    explain_line: Callable[[int], str] | None = None,
    explain_id: Callable[[str], str] | None = None,
) -> OutputsFile:
    """Read and check an outputs file against `examples`; InputError lists every problem.

    `explain_line` / `explain_id` say why a key is not in the eval set (e.g. "it is in the
    train split"); without them the message says only that it is not.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such outputs file")
    if path.is_dir():
        raise InputError(f"{path} is a folder; pass the outputs .jsonl file")
    by_line = {example.line: example for example in examples}
    lines_of_id: dict[str, list[int]] = defaultdict(list)
    for example in examples:
        identifier = example_id(example.metadata)
        if identifier is not None:
            lines_of_id[identifier].append(example.line)

    problems: list[str] = []
    outputs: dict[int, EvalOutput] = {}
    given_at: dict[int, tuple[int, str]] = {}  # example line → (file line, how it was named)
    keyed_by: dict[str, None] = {}
    ambiguous_ids_used: dict[str, None] = {}
    records = 0
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if number == 1:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
                if not raw.strip():
                    continue  # a blank line (often the last) is not a record
                records += 1
                where = f"line {number}"
                try:
                    record = orjson.loads(raw)
                except orjson.JSONDecodeError as error:
                    problems.append(f"{where}: not valid JSON ({error.msg}, column {error.colno})")
                    continue
                if not isinstance(record, dict):
                    problems.append(
                        f'{where}: expected an object such as {{"line": 1, "output": "..."}}, '
                        f"not {describe_json_type(record)}"
                    )
                    continue
                has_line, has_id = "line" in record, "id" in record
                if not has_line and not has_id:
                    problems.append(
                        f"{where}: no line or id to say which example this output is for"
                    )
                    continue
                line: int | None = None
                if has_line:
                    value = record["line"]
                    keyed_by["line"] = None
                    number_of_line = _line_number(value)
                    if number_of_line is None:
                        problems.append(
                            f"{where}: line must be a line number (a whole number ≥ 1), "
                            f"not {value!r}"
                        )
                    elif number_of_line not in by_line:
                        reason = (
                            explain_line(number_of_line) if explain_line else f"not in {set_name}"
                        )
                        problems.append(f"{where}: unknown line {number_of_line}: {reason}")
                    else:
                        line = number_of_line
                        # Both given: the line decides; an id that names another example
                        # means the file and the eval set disagree, which must not pass.
                        stated = record.get("id") if has_id else None
                        own = example_id(by_line[line].metadata)
                        if stated is not None and own is not None and str(stated) != own:
                            problems.append(
                                f"{where}: line {line} is the example with id {own!r}, but "
                                f"the record says id {str(stated)!r}"
                            )
                            line = None
                    named = f"line {number_of_line if number_of_line is not None else value!r}"
                else:
                    value = record["id"]
                    keyed_by["id"] = None
                    if isinstance(value, bool) or not isinstance(value, str | int):
                        problems.append(f"{where}: id must be text or a number, not {value!r}")
                        named = "id"
                    else:
                        identifier = str(value)
                        named = f"id {identifier!r}"
                        matches = lines_of_id.get(identifier, [])
                        if not matches:
                            reason = explain_id(identifier) if explain_id else f"not in {set_name}"
                            problems.append(f"{where}: unknown id {identifier!r}: {reason}")
                        elif len(matches) > 1:
                            ambiguous_ids_used[identifier] = None
                        else:
                            line = matches[0]
                if "output" not in record:
                    problems.append(f"{where}: no output")
                    continue
                text = record["output"]
                if text is None:
                    problems.append(f'{where}: output is null (an empty output is "")')
                    continue
                if not isinstance(text, str):
                    problems.append(f"{where}: output must be text, not {describe_json_type(text)}")
                    continue
                extra, field_problems = _optional_fields(record)
                problems.extend(f"{where}: {problem}" for problem in field_problems)
                if line is None or field_problems:
                    continue
                if line in given_at:
                    first, first_named = given_at[line]
                    which = "that example" if named.startswith("line") else "its example"
                    if named != first_named:
                        which += f" (dataset line {line}, given as {first_named} there)"
                    elif not named.startswith("line"):
                        which += f" (dataset line {line})"
                    problems.append(
                        f"{where}: duplicate {named}: {which} already has an output on "
                        f"line {first} of this file"
                    )
                    continue
                given_at[line] = (number, named)
                outputs[line] = EvalOutput(line=line, output=text, **extra)
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror or error})") from error

    if "id" in keyed_by:
        # Keying by id is only sound when ids are unique in the eval set; a file that uses
        # ids on a set with repeated ids may silently score the wrong example, so it is
        # refused whether or not it names a repeated id.
        repeated = {key: lines for key, lines in lines_of_id.items() if len(lines) > 1}
        notes = [
            f"metadata.id {key!r} is not unique in {set_name} (lines "
            f"{', '.join(map(str, lines[:5]))}{', …' if len(lines) > 5 else ''})"
            + (" and the outputs file uses it" if key in ambiguous_ids_used else "")
            for key, lines in sorted(repeated.items(), key=lambda item: item[1][0])
        ]
        if notes:
            notes[-1] += "; key the outputs by line instead"
        problems = notes + problems
    if records == 0 and not problems:
        problems.append("the file has no outputs")
    if problems:
        listed = problems[:MAX_LISTED_PROBLEMS]
        more = len(problems) - len(listed)
        text = "\n  ".join(listed)
        if more:
            text += f"\n  … and {more} more"
        count = len(problems)
        raise InputError(
            f"{path}: {count} problem{'s' if count != 1 else ''}; nothing was imported.\n  {text}",
            title="Unusable outputs file",
        )
    return OutputsFile(
        path=path,
        sha256=file_sha256(path),
        outputs=tuple(outputs[line] for line in sorted(outputs)),
        keyed_by=tuple(keyed_by),
        without_output=len(by_line) - len(outputs),
    )
