"""Every data check, in one place and in report order.

Adding a check is one module under core/checks/ that defines `CHECK` (see
core/checks/base.py for the kinds) and one line here. The order is the order of the
README's check table and of `findings_by_check` in `ftod data check --json`.
"""

from __future__ import annotations

from core.checks import (
    contradiction,
    empty_content,
    exact_duplicate,
    invalid_json,
    invalid_schema,
    leakage,
    near_duplicate,
    no_assistant,
    pii,
    role_order,
    too_long,
    volatile_fact,
)
from core.checks.base import (
    AgainstCheck,
    CheckSpec,
    DatasetCheck,
    FormatCheck,
    ReadCheck,
    RowCheck,
)

CHECKS: tuple[CheckSpec, ...] = (
    invalid_json.CHECK,
    invalid_schema.CHECK,
    empty_content.CHECK,
    role_order.CHECK,
    no_assistant.CHECK,
    exact_duplicate.CHECK,
    near_duplicate.CHECK,
    contradiction.CHECK,
    pii.CHECK,
    too_long.CHECK,
    leakage.CHECK,
    volatile_fact.CHECK,
)

CHECK_IDS: tuple[str, ...] = tuple(check.id for check in CHECKS)
FORMAT_CHECKS: tuple[FormatCheck, ...] = tuple(c for c in CHECKS if isinstance(c, FormatCheck))
ROW_CHECKS: tuple[RowCheck, ...] = tuple(c for c in CHECKS if isinstance(c, RowCheck))
DATASET_CHECKS: tuple[DatasetCheck, ...] = tuple(c for c in CHECKS if isinstance(c, DatasetCheck))
AGAINST_CHECKS: tuple[AgainstCheck, ...] = tuple(c for c in CHECKS if isinstance(c, AgainstCheck))
# Checks whose error means the row cannot be trained on as it is: found while reading and
# parsing it, before any per-row or cross-row check.
ROW_FORMAT_CHECK_IDS: frozenset[str] = frozenset(
    check.id for check in CHECKS if isinstance(check, ReadCheck | FormatCheck)
)


def check_table() -> str:
    """The README's check table (Markdown), one row per registered check."""
    rows = ["| id | severity | what it finds |", "|---|---|---|"]
    rows += [f"| `{check.id}` | {' / '.join(check.severities)} | {check.doc} |" for check in CHECKS]
    return "\n".join(rows)
