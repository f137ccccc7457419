"""Splits: deterministic from content, stable when rows are added, groups never cross,
stratified on request, manifest hashes, and leakage across splits found automatically."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.datasets import add_dataset, export_dataset, split_dataset
from store.datasets import DatasetRepository
from store.errors import InputError, NotFoundError
from tests.conftest import chat

WORDS = [
    "parcel",
    "invoice",
    "blender",
    "router",
    "refund",
    "password",
    "voucher",
    "courier",
    "warranty",
    "battery",
    "screen",
    "charger",
    "jacket",
    "mattress",
    "kettle",
    "printer",
    "subscription",
    "coupon",
    "delivery",
]


def synthetic_rows(count: int, seed: int = 0, start: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for index in range(start, start + count):
        words = " ".join(rng.choice(WORDS) for _ in range(12))
        rows.append(
            chat(
                f"Ticket {index}: question about {words}?",
                f"Answer {index}: here is what to do about {' '.join(rng.choice(WORDS) for _ in range(10))}.",
                label=rng.choice(
                    ["shipping", "refund", "billing", "rare"] if index % 10 else ["rare"]
                ),
                customer_id=f"cust-{index // 3}",
            )
        )
    return rows


def assignments(repository: DatasetRepository, ref: str, split_id: int) -> dict[str, str]:
    version = repository.version(ref)
    result: dict[str, str] = {}
    for split in ("train", "val", "test"):
        for _line, messages, _metadata, _tools in repository.iter_export_rows(
            version.version_id, split_id, split
        ):
            result[messages] = split
    return result


def test_split_is_deterministic_and_stable_when_rows_are_added(
    workspace: Any, repository: DatasetRepository, jsonl_file: Callable[..., Path]
) -> None:
    add_dataset(workspace, repository, jsonl_file(synthetic_rows(400)), "d")
    first = split_dataset(repository, "d@1", val=0.1, test=0.1, seed=7)
    again = split_dataset(repository, "d@1", val=0.1, test=0.1, seed=7)
    assert first.split.manifest["splits"] == again.split.manifest["splits"]
    counts = {name: info["rows"] for name, info in first.split.manifest["splits"].items()}
    assert sum(counts.values()) == 400 and 20 <= counts["val"] <= 65 and 20 <= counts["test"] <= 65

    rows = synthetic_rows(400) + synthetic_rows(100, seed=1, start=400)
    random.Random(3).shuffle(rows)  # new rows, and line order changed too
    add_dataset(workspace, repository, jsonl_file(rows, name="v2.jsonl"), "d")
    grown = split_dataset(repository, "d@2", val=0.1, test=0.1, seed=7)
    before = assignments(repository, "d@1", first.split.split_id)
    after = assignments(repository, "d@2", grown.split.split_id)
    moved = [key for key, split in before.items() if after[key] != split]
    assert moved == []
    other_seed = split_dataset(repository, "d@1", val=0.1, test=0.1, seed=8)
    assert (
        other_seed.split.manifest["splits"]["val"]["sha256"]
        != first.split.manifest["splits"]["val"]["sha256"]
    )


def test_groups_never_cross_splits(
    workspace: Any, repository: DatasetRepository, jsonl_file: Callable[..., Path]
) -> None:
    add_dataset(workspace, repository, jsonl_file(synthetic_rows(300)), "d")
    outcome = split_dataset(repository, "d", val=0.2, test=0.2, seed=1, group_by="customer_id")
    version = repository.version("d")
    split_of_group: dict[str, set[str]] = defaultdict(set)
    for split in ("train", "val", "test"):
        for _line, _messages, metadata, _tools in repository.iter_export_rows(
            version.version_id, outcome.split.split_id, split
        ):
            import json

            split_of_group[json.loads(metadata)["customer_id"]].add(split)
    assert len(split_of_group) == 100
    assert all(len(splits) == 1 for splits in split_of_group.values())
    assert outcome.split.manifest["splits"]["val"]["units"] > 5


def test_stratified_split_keeps_label_shares(
    workspace: Any, repository: DatasetRepository, jsonl_file: Callable[..., Path]
) -> None:
    add_dataset(workspace, repository, jsonl_file(synthetic_rows(500)), "d")
    outcome = split_dataset(repository, "d", val=0.1, test=0.1, seed=3, stratify="label")
    strata = outcome.split.manifest["strata"]
    for label, counts in strata.items():
        total = sum(counts.values())
        for split, fraction in (("val", 0.1), ("test", 0.1)):
            assert abs(counts[split] - total * fraction) <= 1, (label, counts)
    assert strata["rare"]["val"] >= 5


def test_leakage_across_splits_is_reported(
    workspace: Any, repository: DatasetRepository, jsonl_file: Callable[..., Path]
) -> None:
    rows = synthetic_rows(200)
    # Near-copies of rows (one word changed) will land in other splits for some of them.
    for index in range(0, 200, 4):
        copy = chat(
            rows[index]["messages"][1]["content"] + " thanks",
            rows[index]["messages"][2]["content"],
            label="refund",
        )
        rows.append(copy)
    add_dataset(workspace, repository, jsonl_file(rows), "d")
    outcome = split_dataset(repository, "d", val=0.2, test=0.2, seed=5)
    leaks = outcome.findings
    assert leaks and all(f.check == "leakage" for f in leaks)
    assert all(f.other is not None and f.other.path.startswith("split:") for f in leaks)
    version = repository.version("d")
    stored = repository.findings_page(version.version_id, check="leakage")
    assert len(stored) == len(leaks) and stored[0].split_id == outcome.split.split_id
    assert outcome.split.manifest["leakage_findings"] == len(leaks)


def test_export_one_split(
    workspace: Any, repository: DatasetRepository, jsonl_file: Callable[..., Path], tmp_path: Path
) -> None:
    add_dataset(workspace, repository, jsonl_file(synthetic_rows(100)), "d")
    with pytest.raises(NotFoundError, match="no splits"):
        export_dataset(repository, "d", tmp_path / "val.jsonl", "val")
    outcome = split_dataset(repository, "d", val=0.2, test=0.1, seed=0)
    _, count = export_dataset(repository, "d", tmp_path / "val.jsonl", "val")
    assert count == outcome.split.manifest["splits"]["val"]["rows"]
    assert len((tmp_path / "val.jsonl").read_text().splitlines()) == count


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.1), (0.5, 0.5), (1.0, 0.0)])
def test_bad_fractions(
    workspace: Any,
    repository: DatasetRepository,
    jsonl_file: Callable[..., Path],
    val: float,
    test: float,
) -> None:
    add_dataset(workspace, repository, jsonl_file(synthetic_rows(20)), "d")
    with pytest.raises(InputError):
        split_dataset(repository, "d", val=val, test=test, seed=0)


def test_unknown_group_field(
    workspace: Any, repository: DatasetRepository, jsonl_file: Callable[..., Path]
) -> None:
    add_dataset(workspace, repository, jsonl_file(synthetic_rows(20)), "d")
    with pytest.raises(InputError, match=r"no row has metadata\.tenant"):
        split_dataset(repository, "d", val=0.1, test=0.1, seed=0, group_by="tenant")


def test_exact_duplicates_share_a_split(
    workspace: Any, repository: DatasetRepository, jsonl_file: Callable[..., Path]
) -> None:
    rows = synthetic_rows(100)
    rows += [rows[i] for i in range(0, 100, 5)]
    add_dataset(workspace, repository, jsonl_file(rows), "d")
    outcome = split_dataset(repository, "d", val=0.3, test=0.3, seed=2)
    assert not [f for f in outcome.findings if f.check == "leakage"]
    assert Counter(f.check for f in outcome.findings) == Counter()
