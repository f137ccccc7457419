"""The data-check registry: the README's table, the DESIGN contract and the scan follow it."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

import pytest

import core.checks
import core.scan
from core import findings as findings_module
from core.checks import registry
from core.checks.base import CheckSpec, RowCheck, RowContext
from core.findings import Finding, Severity
from core.scan import check_file
from tests.conftest import SYSTEM, chat, clean_rows

ROOT = Path(__file__).resolve().parent.parent

# The check ids of DESIGN.md's "Stable contracts" (`ftod data check`): more may be added,
# none renamed. volatile_fact is the knowledge audit's check, not registered yet.
DESIGN_CHECK_IDS = frozenset(
    {
        "invalid_json",
        "invalid_schema",
        "empty_content",
        "role_order",
        "no_assistant",
        "exact_duplicate",
        "near_duplicate",
        "contradiction",
        "pii",
        "too_long",
        "leakage",
        "volatile_fact",
    }
)


def readme_check_table() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("| id | severity | what it finds |")
    return text[start : text.index("\n\n", start)]


def test_readme_check_table_is_the_registry() -> None:
    assert readme_check_table() == registry.check_table()


def test_every_registered_id_is_a_design_contract_id() -> None:
    ids = [check.id for check in registry.CHECKS]
    assert len(ids) == len(set(ids))
    assert set(ids) <= DESIGN_CHECK_IDS


def test_every_spec_is_well_formed() -> None:
    for check in registry.CHECKS:
        assert check.severities and set(check.severities) <= set(get_args(Severity)), check.id
        assert check.doc and "\n" not in check.doc and "|" not in check.doc, check.id


def test_every_check_module_is_registered() -> None:
    """A module under core/checks/ that defines a CHECK cannot be left out of the registry."""
    defined: list[str] = []
    for module_info in pkgutil.iter_modules(core.checks.__path__):
        module = importlib.import_module(f"core.checks.{module_info.name}")
        spec = getattr(module, "CHECK", None)
        if isinstance(spec, CheckSpec):
            defined.append(spec.id)
            assert spec in registry.CHECKS, module_info.name
    assert sorted(defined) == sorted(check.id for check in registry.CHECKS)


def test_check_ids_and_format_checks_come_from_the_registry() -> None:
    assert tuple(check.id for check in registry.CHECKS) == registry.CHECK_IDS
    format_checks = {
        "invalid_json",
        "invalid_schema",
        "empty_content",
        "role_order",
        "no_assistant",
    }
    assert set(registry.ROW_FORMAT_CHECK_IDS) == format_checks
    # One place: the finding type does not keep a second copy of the ids.
    assert not hasattr(findings_module, "CHECK_IDS")


def every_check_rows() -> list[Any]:
    """Rows that set off every registered check at least once (leakage via --against)."""
    rows: list[Any] = clean_rows()
    rows.append(rows[0])  # exact_duplicate
    rows.append(
        chat(
            "Where is my parcel? Tracking says it left the depot on Monday!",
            "It is with the local courier now and should be delivered by Thursday evening!!",
        )
    )  # near_duplicate of row 1
    rows += [
        chat("Can I return opened headphones?", "Yes, within 30 days.", label="returns"),
        chat("Can I return opened headphones?", "No, opened items are final.", label="policy"),
    ]  # contradiction
    rows.append(chat("Email me at jane.doe@example.com", "Sure, I will write to you."))  # pii
    rows.append(chat("Summarise this. " + "word " * 3000, "Done."))  # too_long
    rows.append("{not json")  # invalid_json
    rows.append({"text": "no messages"})  # invalid_schema
    rows.append(
        {
            "messages": [
                SYSTEM,
                {"role": "user", "content": " "},
                {"role": "assistant", "content": "Hi"},
            ]
        }
    )  # empty_content
    rows.append(
        {
            "messages": [
                SYSTEM,
                {"role": "assistant", "content": "Hi"},
                {"role": "user", "content": "Hello?"},
                {"role": "assistant", "content": "Hi"},
            ]
        }
    )  # role_order
    rows.append({"messages": [SYSTEM, {"role": "user", "content": "Hello there"}]})  # no_assistant
    return rows


def test_every_check_fires_with_a_declared_severity(jsonl_file: Callable[..., Path]) -> None:
    path = jsonl_file(every_check_rows())
    other = jsonl_file(clean_rows()[:2], name="other.jsonl")
    report = check_file(path, core.scan.CheckOptions(against=(other,)))
    severities = {check.id: check.severities for check in registry.CHECKS}
    for finding in report.findings:
        assert finding.severity in severities[finding.check], finding
    assert {finding.check for finding in report.findings} == set(severities)
    # The summary's per-check table is keyed by the registry, in its order.
    assert list(report.summary["findings_by_check"]) == list(severities)


def test_a_registered_row_check_runs_in_the_scan(
    jsonl_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a newcomer's check gets from one registry line: the scan calls it on every row."""

    def shouting(row: RowContext) -> Sequence[Finding]:
        if any(text.isupper() for text in row.conversation.texts):
            return (Finding("shouting", "warning", (row.line,), "a turn in capitals"),)
        return ()

    extra = RowCheck("shouting", ("warning",), "a turn written in capitals", shouting)
    monkeypatch.setattr(core.scan, "ROW_CHECKS", (*registry.ROW_CHECKS, extra))
    rows: list[Any] = [
        *clean_rows(),
        chat("WHERE IS MY ORDER", "It ships today, sorry for the wait."),
    ]
    report = check_file(jsonl_file(rows))
    assert [(f.check, f.lines) for f in report.findings] == [("shouting", (11,))]
