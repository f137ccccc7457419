"""too_long: a row over the training sequence length, which training would truncate."""

from __future__ import annotations

from collections.abc import Sequence

from core.checks.base import RowCheck, RowContext
from core.findings import Finding


def find(row: RowContext) -> Sequence[Finding]:
    if row.total_tokens <= row.max_seq_len:
        return ()
    how = "" if row.tokens_exact else " (estimated)"
    return (
        Finding(
            "too_long",
            "warning",
            (row.line,),
            f"{row.total_tokens} tokens{how} > max_seq_len {row.max_seq_len}: "
            "training would truncate this row",
        ),
    )


CHECK = RowCheck(
    "too_long",
    ("warning",),
    "over `--max-seq-len` (default 2048) tokens, counted with `--tokenizer DIR` and its chat "
    "template, otherwise estimated and labelled so",
    find,
)
