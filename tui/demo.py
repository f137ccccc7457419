"""`ftod demo`: a workspace built from sample_runs/, outside the user's own workspace."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from core.datasets import add_dataset, split_dataset
from store.datasets import DatasetRepository
from store.db import Store
from store.errors import InputError
from store.workspace import Workspace, init_workspace

SAMPLE_RUNS = Path(__file__).resolve().parent.parent / "sample_runs"
SUPPORT_DIR = SAMPLE_RUNS / "support_tickets"


def build_demo_workspace(
    folder: Path | None = None, log: Callable[[str], None] = print
) -> Workspace:
    """(Re)build the demo workspace. Idempotent: same files, same versions."""
    if not SUPPORT_DIR.is_dir():
        raise InputError(
            f"sample data missing at {SUPPORT_DIR}; run sample_runs/make_support_tickets.py"
        )
    target = folder or Path(tempfile.gettempdir()) / "ftod-demo"
    workspace, _ = init_workspace(target)
    repository = DatasetRepository(Store.open(workspace))
    for file_name, dataset in (
        ("support_tickets.jsonl", "support-tickets"),
        ("support_tickets_v2.jsonl", "support-tickets"),
        ("heldout_eval.jsonl", "heldout-eval"),
    ):
        outcome = add_dataset(workspace, repository, SUPPORT_DIR / file_name, dataset)
        state = "added" if outcome.created else "already there"
        log(f"{outcome.version.ref}: {state} ({outcome.version.rows_total} rows)")
        if outcome.created and dataset == "support-tickets":
            split_dataset(
                repository,
                outcome.version.ref,
                val=0.1,
                test=0.1,
                seed=0,
                group_by="customer_id",
                stratify="label",
            )
    return workspace
