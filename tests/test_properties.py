"""Property-based: random bytes and random JSON never crash ingest or check.

Either the file is reported as unusable (InputError, exit 2) or every row is accounted for:
each non-blank line is a stored example, valid or invalid, and each invalid one has a finding.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.checks.registry import ROW_FORMAT_CHECK_IDS as FORMAT_CHECKS
from core.scan import check_file
from store.errors import InputError

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "bot", "", None])
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles, "content": st.one_of(st.text(max_size=30), st.none(), json_values)},
        optional={
            "weight": st.sampled_from([0, 1, 2, None]),
            "tool_calls": json_values,
            "tool_call_id": json_values,
        },
    ),
    max_size=5,
)
rows = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"messages": messages}, optional={"metadata": json_values, "tools": json_values}
    ),
    st.fixed_dictionaries({"prompt": json_values, "completion": json_values}),
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.jsonl"
        path.write_bytes(data)
        try:
            report = check_file(path)
        except InputError as error:
            assert error.message and error.exit_code == 2
            return
        physical = data.split(b"\n")
        non_blank = sum(1 for line in physical if line.strip(b" \t\r\n\xef\xbb\xbf"))
        assert report.rows <= non_blank
        assert 0 <= report.valid_rows <= report.rows
        lines_with_format_errors = {
            line
            for f in report.findings
            if f.check in FORMAT_CHECKS and f.severity == "error"
            for line in f.lines
        }
        assert report.valid_rows == report.rows - len(lines_with_format_errors)
        for finding in report.findings:
            assert finding.lines and all(1 <= line <= len(physical) for line in finding.lines)
            json.dumps(finding.as_json())


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@SETTINGS
@given(st.lists(rows, min_size=1, max_size=8))
def test_random_json_rows(values: list[Any]) -> None:
    _check(b"\n".join(json.dumps(value).encode() for value in values) + b"\n")


@SETTINGS
@given(
    st.lists(st.one_of(rows.map(json.dumps), st.text(max_size=40)), min_size=1, max_size=6),
    st.booleans(),
)
def test_mixed_lines_with_crlf(lines: list[str], crlf: bool) -> None:
    separator = "\r\n" if crlf else "\n"
    _check(
        separator.join(line.replace("\n", " ").replace("\r", " ") for line in lines).encode(
            "utf-8", "surrogatepass"
        )
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(rows.map(json.dumps), st.binary(max_size=30).map(lambda b: b.decode("latin-1"))),
        min_size=1,
        max_size=6,
    )
)
def test_random_rows_ingest_into_the_store(lines: list[str]) -> None:
    from core.datasets import add_dataset
    from store.datasets import DatasetRepository
    from store.db import Store
    from store.workspace import init_workspace

    data = "\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines).encode(
        "utf-8", "surrogatepass"
    )
    with tempfile.TemporaryDirectory() as folder:
        workspace, _ = init_workspace(Path(folder))
        repository = DatasetRepository(Store.open(workspace))
        path = Path(folder) / "data.jsonl"
        path.write_bytes(data)
        try:
            outcome = add_dataset(workspace, repository, path, "fuzz")
        except InputError:
            assert repository.list_datasets() == []
            return
        version = outcome.version
        stored = repository.examples_page(version.version_id, limit=100)
        assert len(stored) == version.rows_total
        assert sum(1 for row in stored if row.valid) == version.rows_valid
