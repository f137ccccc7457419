"""The knowledge audit of a stored dataset version: the `volatile_fact` check's audit,
run over the examples in DuckDB rather than over a file being checked.

Apart from the check module because it parses stored rows (core.conversation), which the
check registry, and so the check itself, must not depend on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.checks.volatile_fact import AuditBuilder, KnowledgeAudit, assistant_texts, row_date

if TYPE_CHECKING:
    from store.datasets import DatasetRepository


def audit_version(
    datasets: DatasetRepository,
    version_id: int,
    split: str | None = None,
    terms: Sequence[str] = (),
) -> KnowledgeAudit:
    """The knowledge audit of a stored version's examples (all rows, or one split's).

    A split is looked up in the version's latest split; a version without one, or a split
    name it lacks, is an input error naming the field.
    """
    import orjson

    from core.conversation import parse_row
    from store.errors import InputError

    split_id: int | None = None
    if split is not None:
        splits = datasets.splits(version_id)
        if not splits:
            raise InputError("this dataset version has no split yet", field="split")
        latest = splits[-1]
        if split not in latest.manifest.get("splits", {}):
            known = ", ".join(latest.manifest.get("splits", {})) or "none"
            raise InputError(f"no split named {split!r} (known: {known})", field="split")
        split_id = latest.split_id
    builder = AuditBuilder.for_terms(terms)
    for line, messages_json, metadata_json, raw in datasets.iter_audit_rows(
        version_id, split_id, split
    ):
        metadata = orjson.loads(metadata_json) if metadata_json else {}
        conversation, _ = parse_row({"messages": orjson.loads(messages_json), "metadata": metadata})
        if conversation is None:
            continue
        row: dict[str, Any] | None = None
        if raw and ("created_at" in raw or "timestamp" in raw):
            try:
                loaded = orjson.loads(raw)
            except orjson.JSONDecodeError:
                loaded = None
            row = loaded if isinstance(loaded, dict) else None
        builder.add_turns(
            line,
            assistant_texts(conversation.messages, conversation.texts),
            row_date(row, metadata if isinstance(metadata, dict) else None),
        )
    return builder.build()
