"""The real training logs written by other tools that the importer is tested on.

Byte-exact copies live in tests/fixtures/trainer_logs (from shared/external, see its
SOURCES.md); when the shared folder is beside the checkout, files added there later are
tested too.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IN_REPO = REPO / "tests" / "fixtures" / "trainer_logs"
SHARED = REPO.parent / "shared" / "external" / "trainer_logs"


def trainer_logs() -> list[Path]:
    found: dict[str, Path] = {}
    for folder in (IN_REPO, SHARED):
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.is_file() and path.name != "SOURCES.md":
                    found.setdefault(path.name, path)
    return [found[name] for name in sorted(found)]
