"""A damaged store is reported as damaged (`ftod store check`, and every command that trips
over it), never as "a bug in ftod"; `ftod store backup` writes a consistent, checked copy.
The damage is real: the DuckDB file cut short, as a full disk or a bad copy leaves it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from store.db import Store, check_store
from store.workspace import init_workspace
from tests.conftest import chat, clean_rows, write_jsonl
from tests.filesystems import leftovers
from tui.cli import main


def ftod(project: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["--workspace", str(project), *args])


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with two datasets big enough to span many DuckDB blocks (built once)."""
    folder = tmp_path_factory.mktemp("pristine")
    project = folder / "project"
    init_workspace(project)
    rows = [chat(f"Question {i} about lamp {i * 7}?", f"Answer {i}: " + "words " * 60)
            for i in range(400)]  # fmt: skip
    for name in ("big", "other"):
        source = write_jsonl(folder / f"{name}.jsonl", rows)
        assert ftod(project, "data", "add", str(source), "--name", name).exit_code == 0
    return project


def copy_of(pristine: Path, tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(pristine, project)
    return project


def database(project: Path) -> Path:
    return project / ".ftod" / "ftod.duckdb"


def truncate(path: Path, fraction: float) -> None:
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(int(size * fraction) // 4096 * 4096)


def test_a_whole_store_checks_clean_and_is_backed_up_consistently(
    pristine: Path, tmp_path: Path
) -> None:
    project = copy_of(pristine, tmp_path)
    checked = ftod(project, "store", "check", "--json")
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output)
    assert (
        report["ok"]
        and {"examples": 800}.items() <= {t["table"]: t["rows"] for t in report["tables"]}.items()
    )
    backup = tmp_path / "backup.duckdb"
    made = ftod(project, "store", "backup", str(backup))
    assert made.exit_code == 0 and "Wrote" in made.output, made.output
    copied = check_store(Store(backup))
    assert copied.ok
    assert [(t.table, t.rows) for t in copied.tables] == [
        (t["table"], t["rows"]) for t in report["tables"]
    ]
    again = ftod(project, "store", "backup", str(backup))
    assert again.exit_code == 2 and "already exists; pass --force" in again.output
    assert ftod(project, "store", "backup", str(backup), "--force").exit_code == 0
    assert leftovers(tmp_path) == []
    # The copy is a working store: ftod opens it as a workspace's database.
    restored = tmp_path / "restored"
    init_workspace(restored)
    shutil.copyfile(backup, database(restored))
    listed = ftod(restored, "data", "list", "--json")
    assert [d["name"] for d in json.loads(listed.output)] == ["big", "other"]


# Cut points inside the used blocks. (A cut in the free tail is no damage: DuckDB trims free
# blocks off the end itself, and every row still reads.)
@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.8, 0.9])
def test_a_truncated_store_is_called_damaged_by_every_command(
    pristine: Path, tmp_path: Path, fraction: float
) -> None:
    project = copy_of(pristine, tmp_path)
    truncate(database(project), fraction)
    checked = ftod(project, "store", "check", "--json")
    assert checked.exit_code == 1, checked.output
    report = json.loads(checked.output)
    assert not report["ok"]
    assert report["open_error"] or report["size_error"] or any(t["error"] for t in report["tables"])
    source = write_jsonl(tmp_path / "new.jsonl", clean_rows())
    for args in (
        ("data", "list"),
        ("data", "show", "big"),
        ("data", "export", "big@1", "-o", str(tmp_path / "out.jsonl")),
        ("data", "add", str(source), "--name", "new"),
        ("runs", "list"),
    ):
        result = ftod(project, *args)
        assert "bug in ftod" not in result.output, (args, result.output)
        assert result.exit_code in (0, 3), (args, result.output)
        if result.exit_code == 3:
            assert "is damaged" in result.output and "Restore it from a copy" in result.output
    backup = ftod(project, "store", "backup", str(tmp_path / "backup.duckdb"))
    if report["open_error"] or any(t["error"] for t in report["tables"]):
        assert backup.exit_code == 3 and "damaged" in backup.output, backup.output
        assert not (tmp_path / "backup.duckdb").exists()
    else:
        # Cut only in its unused tail: every row still reads, so a backup saves all of it.
        assert backup.exit_code == 0, backup.output
        assert check_store(Store(tmp_path / "backup.duckdb")).ok
    assert leftovers(tmp_path) == []


def test_a_store_that_opens_but_is_damaged_inside_says_so_on_every_read_of_the_damage(
    pristine: Path, tmp_path: Path
) -> None:
    """The probe's case: the file opens and lists, yet rows are gone. A write that touches
    none of the lost blocks may still go through (finding that out would mean reading the
    whole file on every write), but every read that meets the damage says so; it used to
    be an internal error."""
    found = None
    for fraction in (0.95, 0.9, 0.85, 0.8, 0.75, 0.7):
        project = copy_of(pristine, tmp_path / f"at-{fraction}")
        truncate(database(project), fraction)
        if (
            ftod(project, "data", "list").exit_code == 0
            and check_store(Store(database(project))).damaged
        ):
            found = project
            break
    assert found is not None, "no truncation point left the store openable but damaged"
    source = write_jsonl(tmp_path / "new.jsonl", clean_rows())
    added = ftod(found, "data", "add", str(source), "--name", "new")
    assert added.exit_code in (0, 3) and "bug in ftod" not in added.output, added.output
    shown = ftod(found, "data", "show", "big")
    assert shown.exit_code == 3, shown.output
    assert "The store file" in shown.output and "is damaged" in shown.output
    assert ftod(found, "store", "check").exit_code == 1
