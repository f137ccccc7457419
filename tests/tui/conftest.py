"""Fixtures for the dashboard tests: real workspaces built with core.datasets in tmp folders.

The "support" workspace is built once per session (add + split take about a second) and
only read by the tests that share it; tests that add data get a copy or an empty one.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.datasets import add_dataset, split_dataset
from store.workspace import Workspace, init_workspace
from tests.tui.helpers import CREATED_AT, SPLIT_AT, SUPPORT_LINES, open_repository, write_jsonl


@pytest.fixture(scope="session")
def support_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with `.ftod/` holding support@1 (checked, split). Read-only."""
    project = tmp_path_factory.mktemp("support-project")
    source = write_jsonl(project / "support.jsonl", SUPPORT_LINES)
    workspace, _ = init_workspace(project)
    repository = open_repository(workspace)
    add_dataset(workspace, repository, source, "support", created_at=CREATED_AT)
    split_dataset(repository, "support", val=0.2, test=0.2, seed=1, created_at=SPLIT_AT)
    return project


@pytest.fixture
def support_workspace(support_project: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """The shared workspace, with the project folder as the current directory (stable paths)."""
    monkeypatch.chdir(support_project)
    return Workspace(support_project / ".ftod")


@pytest.fixture
def copied_workspace(
    support_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    """A private copy of the support workspace that a test may add to."""
    project = tmp_path / "project"
    shutil.copytree(support_project, project)
    monkeypatch.chdir(project)
    return Workspace(project / ".ftod")


@pytest.fixture
def empty_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    project = tmp_path / "empty-project"
    project.mkdir()
    workspace, _ = init_workspace(project)
    monkeypatch.chdir(project)
    yield workspace
