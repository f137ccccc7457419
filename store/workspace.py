"""Finding and creating a workspace: a `.ftod/` folder holding `ftod.duckdb` and `runs/`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from store.errors import WorkspaceError

WORKSPACE_DIRNAME = ".ftod"
DATABASE_FILENAME = "ftod.duckdb"
WORKSPACE_ENV = "FTOD_WORKSPACE"


@dataclass(frozen=True, slots=True)
class Workspace:
    root: Path  # the `.ftod` folder itself

    @property
    def database_path(self) -> Path:
        return self.root / DATABASE_FILENAME

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"


def _as_workspace_dir(path: Path) -> Path:
    """Accept either the `.ftod` folder or the project folder that contains it."""
    if path.name == WORKSPACE_DIRNAME:
        return path
    return path / WORKSPACE_DIRNAME


def find_workspace(
    explicit: str | os.PathLike[str] | None = None, start: Path | None = None
) -> Workspace:
    """Resolve the workspace as git resolves `.git`: explicit, then env, then upward search."""
    named = explicit if explicit is not None else os.environ.get(WORKSPACE_ENV) or None
    if named is not None:
        root = _as_workspace_dir(Path(named).expanduser().resolve())
        if not root.is_dir():
            raise WorkspaceError(
                f"No ftod workspace at {root}. Create one with `ftod init {root.parent}`."
            )
        return Workspace(root)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / WORKSPACE_DIRNAME
        if candidate.is_dir():
            return Workspace(candidate)
    raise WorkspaceError(
        f"No ftod workspace in {here} or any parent folder. "
        "Run `ftod init` here, or pass --workspace / set FTOD_WORKSPACE."
    )


def init_workspace(folder: Path) -> tuple[Workspace, bool]:
    """Create `folder/.ftod` (idempotent). Returns the workspace and whether it was new."""
    root = _as_workspace_dir(folder.expanduser().resolve())
    created = not root.exists()
    if root.exists() and not root.is_dir():
        raise WorkspaceError(f"{root} exists and is not a folder.")
    try:
        (root / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WorkspaceError(f"Cannot create the workspace at {root}: {error.strerror}") from error
    return Workspace(root), created
