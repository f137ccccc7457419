"""The store: migrations, versions by content hash, and two processes sharing the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from core.datasets import add_dataset, export_dataset
from store.datasets import DatasetRepository, parse_ref
from store.db import Store
from store.errors import InputError, NotFoundError, StoreBusyError, WorkspaceError
from store.migrations import MIGRATIONS
from store.workspace import find_workspace, init_workspace
from tests.conftest import chat, clean_rows

ROOT = Path(__file__).resolve().parent.parent


def test_schema_version_table_and_idempotent_migrate(workspace: Any) -> None:
    store = Store.open(workspace)
    latest = max(version for version, _ in MIGRATIONS)
    assert store.schema_version() == latest
    assert store.migrate() == latest  # a second open applies nothing
    with store.reading() as connection:
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables"
            ).fetchall()
        }
    assert {
        "schema_version",
        "datasets",
        "dataset_versions",
        "examples",
        "findings",
        "splits",
    } <= tables


def test_migration_from_an_older_schema_applies_only_newer_steps(
    workspace: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store.open(workspace)
    extra = (max(v for v, _ in MIGRATIONS) + 1, ["CREATE TABLE migration_probe (x INTEGER)"])
    monkeypatch.setattr("store.db.MIGRATIONS", [*MIGRATIONS, extra])
    assert store.migrate() == extra[0]
    with store.reading() as connection:
        versions = [
            row[0]
            for row in connection.execute(
                "SELECT version FROM schema_version ORDER BY 1"
            ).fetchall()
        ]
    assert versions == [*range(1, extra[0] + 1)]


def test_find_workspace_upward_env_and_explicit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace, created = init_workspace(tmp_path)
    assert created and workspace.root == tmp_path / ".ftod"
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.delenv("FTOD_WORKSPACE", raising=False)
    assert find_workspace(start=nested).root == workspace.root
    assert find_workspace(str(tmp_path)).root == workspace.root
    monkeypatch.setenv("FTOD_WORKSPACE", str(tmp_path / ".ftod"))
    assert find_workspace(start=Path("/")).root == workspace.root
    monkeypatch.delenv("FTOD_WORKSPACE")
    with pytest.raises(WorkspaceError, match="ftod init"):
        find_workspace(start=Path("/"))


def test_versions_follow_content(
    workspace: Any, repository: DatasetRepository, jsonl_file: Callable[..., Path]
) -> None:
    path = jsonl_file(clean_rows())
    first = add_dataset(workspace, repository, path, "support")
    assert first.created and first.version.version == 1 and first.version.rows_total == 10
    again = add_dataset(workspace, repository, path, "support")
    assert not again.created and again.version.version == 1
    rows: list[Any] = clean_rows()
    rows.append(
        chat("Can I collect my order from a store?", "Yes, choose click and collect at checkout.")
    )
    second = add_dataset(workspace, repository, jsonl_file(rows, name="v2.jsonl"), "support")
    assert second.created and second.version.version == 2 and second.version.rows_total == 11
    assert [v.version for v in repository.versions("support")] == [1, 2]
    assert repository.version("support").version == 2
    assert repository.version("support@1").rows_total == 10
    listing = repository.list_datasets()
    assert [(d.name, d.versions, d.rows) for d in listing] == [("support", 2, 11)]
    # Nothing staged is left behind.
    assert list((workspace.root / "tmp").iterdir()) == []


def test_dataset_survives_source_file_changes(
    workspace: Any, repository: DatasetRepository, jsonl_file: Callable[..., Path], tmp_path: Path
) -> None:
    path = jsonl_file(clean_rows())
    add_dataset(workspace, repository, path, "support")
    path.write_text("garbage\n")
    _, count = export_dataset(repository, "support@1", tmp_path / "out.jsonl")
    exported = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert count == 10 and exported[0]["messages"] == clean_rows()[0]["messages"]
    assert exported[0]["metadata"]["label"] == "shipping"


def test_invalid_rows_are_kept_as_findings_and_examples(
    workspace: Any, repository: DatasetRepository, jsonl_file: Callable[..., Path]
) -> None:
    rows: list[Any] = [*clean_rows(), "{not json", {"messages": [{"role": "bot", "content": "x"}]}]
    outcome = add_dataset(workspace, repository, jsonl_file(rows), "support")
    version = outcome.version
    assert version.rows_total == 12 and version.rows_valid == 10 and version.errors == 2
    invalid = repository.example(version.version_id, 11)
    assert not invalid.valid and invalid.raw == "{not json"
    findings = repository.findings_page(version.version_id)
    assert [(f.check, f.lines) for f in findings] == [
        ("invalid_json", (11,)),
        ("invalid_schema", (12,)),
    ]
    assert repository.count_findings(version.version_id, check="invalid_json") == 1


def test_strict_refuses_a_file_with_errors(
    workspace: Any, repository: DatasetRepository, jsonl_file: Callable[..., Path]
) -> None:
    from store.errors import ChecksFailed

    with pytest.raises(ChecksFailed):
        add_dataset(
            workspace, repository, jsonl_file([*clean_rows(), "{bad"]), "support", strict=True
        )
    with pytest.raises(NotFoundError):
        repository.versions("support")


def test_created_at_is_recorded(
    workspace: Any, repository: DatasetRepository, jsonl_file: Callable[..., Path]
) -> None:
    stamp = datetime(2026, 1, 2, 3, 4)
    outcome = add_dataset(
        workspace, repository, jsonl_file(clean_rows()), "support", created_at=stamp
    )
    assert outcome.version.created_at == stamp


@pytest.mark.parametrize("ref", ["@1", "x@y", "x@"])
def test_bad_refs(ref: str) -> None:
    if ref == "x@":
        assert parse_ref(ref) == ("x", None)
        return
    with pytest.raises(NotFoundError):
        parse_ref(ref)


def test_bad_dataset_name(
    workspace: Any, repository: DatasetRepository, jsonl_file: Callable[..., Path]
) -> None:
    with pytest.raises(InputError, match="dataset name"):
        add_dataset(workspace, repository, jsonl_file(clean_rows()), "my data@2")


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from store.db import Store
    store = Store(Path(sys.argv[1]))
    with store.writing() as connection:
        connection.execute("SELECT count(*) FROM datasets").fetchall()
        print("holding", flush=True)
        time.sleep(float(sys.argv[2]))
    print("released", flush=True)
    """
)


def _hold_store(database: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(database), str(seconds)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "holding"
    return holder


def test_cli_add_waits_for_another_process_holding_the_store(
    workspace: Any, jsonl_file: Callable[..., Path]
) -> None:
    Store.open(workspace)
    path = jsonl_file(clean_rows())
    holder = _hold_store(workspace.database_path, 2.0)
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tui.cli",
            "--workspace",
            str(workspace.root),
            "data",
            "add",
            str(path),
            "--name",
            "support",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FTOD_BUSY_TIMEOUT": "60"},
    )
    holder.wait(timeout=30)
    assert holder.returncode == 0
    assert result.returncode == 0, result.stderr
    assert "Added support@1" in result.stdout
    assert "Store busy" in result.stderr  # it said it was waiting
    assert time.monotonic() - started >= 1.0
    repository = DatasetRepository(Store.open(workspace))
    assert repository.version("support").rows_total == 10


def test_readers_in_two_processes_interleave_with_a_writer(
    workspace: Any, repository: DatasetRepository, jsonl_file: Callable[..., Path]
) -> None:
    """A TUI-like poller in another process and adds here: both always succeed."""
    add_dataset(workspace, repository, jsonl_file(clean_rows()), "support")
    poller = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
            import sys, time
            from pathlib import Path
            from store.db import Store
            from store.datasets import DatasetRepository
            repository = DatasetRepository(Store(Path(sys.argv[1])))
            seen = set()
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and 4 not in seen:
                seen.add(len(repository.versions("support")))
                time.sleep(0.01)
            print(sorted(seen))
            """
            ),
            str(workspace.database_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for index in range(3):
        rows: list[Any] = clean_rows()
        rows.append(
            chat(
                f"Question number {index} about opening hours in town {index}?", f"Answer {index}."
            )
        )
        assert add_dataset(
            workspace, repository, jsonl_file(rows, name=f"v{index}.jsonl"), "support"
        ).created
    out, err = poller.communicate(timeout=60)
    assert poller.returncode == 0, err
    assert json.loads(out)[-1] == 4


def test_store_busy_after_deadline(workspace: Any) -> None:
    Store.open(workspace)
    holder = _hold_store(workspace.database_path, 3.0)
    try:
        impatient = Store(workspace.database_path, busy_timeout_s=0.3)
        with pytest.raises(StoreBusyError, match="locked"), impatient.reading():
            pass
        assert impatient.lock_waits > 0
    finally:
        holder.wait(timeout=30)
