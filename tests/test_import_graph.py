"""The import graph of core/, store/ and tui/ has no cycle between files and runs one way.

Every import counts: module level, inside functions (the lazy imports that hid the cycles
this test was written to stop) and under `if TYPE_CHECKING`. A type-only import does not
make a runtime cycle, but two files that name each other are still one design split in two,
so such a cycle fails too (screens see the app through the DataSource protocol instead).

An import of `pkg.sub.mod` is an edge to that module's file only, not to the `__init__.py`
files of its packages: Python runs those first, but they hold no imports back into their
submodules here, and counting them would report every package as a cycle with its members.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("store", "core", "tui")
LAYER = {"store": 0, "core": 1, "tui": 2}
"""tui → core → store: a module may import only its own layer or those below it."""

Graph = dict[str, set[str]]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The module an ImportFrom names, with relative levels resolved against the importer."""
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    # From a package's __init__, level 1 is the package itself; from a module, its parent.
    drop = node.level - 1 if is_package else node.level
    base = base[: len(base) - drop] if drop else base
    return ".".join([*base, node.module] if node.module else base)


def imported_modules(path: Path, root: Path, known: Iterable[str]) -> set[str]:
    """The project modules `path` imports anywhere in its body (functions included)."""
    known_modules = set(known)
    importer = module_name(path, root)
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def add(candidate: str) -> None:
        # `import core.evals.stats` and `from core.evals import stats` both land on the
        # deepest project module the name reaches.
        while candidate and candidate not in known_modules:
            candidate = candidate.rpartition(".")[0]
        if candidate and candidate != importer:
            found.add(candidate)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, importer, is_package)
            for alias in node.names:
                # A submodule by that name is the edge; a name defined in the package
                # itself falls back to the package.
                add(f"{target}.{alias.name}" if target else alias.name)
    return found


def import_graph(root: Path, packages: Iterable[str] = PACKAGES) -> Graph:
    files = {
        module_name(path, root): path
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
    }
    return {name: imported_modules(path, root, files) for name, path in files.items()}


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module, each as a closed path."""
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        # Iterative Tarjan: the tui graph is deep enough that recursion is not worth the risk.
        nonlocal counter
        work: list[tuple[str, list[str]]] = [(start, sorted(graph.get(start, ())))]
        index_of[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                child = pending.pop(0)
                if child not in index_of:
                    index_of[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(graph.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index_of[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index_of[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

    for name in sorted(graph):
        if name not in index_of:
            visit(name)
    return [_closed_path(group, graph) for group in sorted(groups)]


def _closed_path(group: list[str], graph: Mapping[str, set[str]]) -> list[str]:
    """One concrete cycle through the group's first member, for a readable failure."""
    members = set(group)
    start = group[0]
    paths: list[list[str]] = [[start]]
    seen = {start}
    while paths:
        path = paths.pop(0)
        for child in sorted(graph[path[-1]] & members):
            if child == start:
                return [*path, start]
            if child not in seen:
                seen.add(child)
                paths.append([*path, child])
    return group


def layer_violations(graph: Mapping[str, set[str]]) -> list[str]:
    return sorted(
        f"{importer} imports {target}"
        for importer, targets in graph.items()
        for target in targets
        if LAYER[target.split(".")[0]] > LAYER[importer.split(".")[0]]
    )


# -- the contracts on this repository ------------------------------------------------------------


def test_no_import_cycle_between_files() -> None:
    cycles = find_cycles(import_graph(ROOT))
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(cycle) for cycle in cycles)


def test_imports_run_tui_to_core_to_store() -> None:
    assert layer_violations(import_graph(ROOT)) == []


SCREEN_DIALOGS = {("tui.screens.datasets", "tui.screens.add_dataset")}
"""A screen may import a dialog it waits on for a result; every other next screen is
opened by the app from an Open… request (tui/screens/base.py)."""


def test_screens_do_not_import_one_another() -> None:
    graph = import_graph(ROOT)
    between = sorted(
        (importer, target)
        for importer, targets in graph.items()
        if importer.startswith("tui.screens.")
        for target in targets
        if target.startswith("tui.screens.") and target != "tui.screens.base"
    )
    assert [edge for edge in between if edge not in SCREEN_DIALOGS] == []


# -- the checker itself, on throwaway packages ---------------------------------------------------


def write_tree(root: Path, files: Mapping[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    "second_module",
    [
        "from tui.a import thing\n",
        "def later() -> None:\n    from tui.a import thing\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tui import a\n",
        "import tui.a\n",
        "from . import a\n",
        "from .a import thing\n",
    ],
    ids=["module-level", "inside-function", "type-checking", "import", "relative", "relative-from"],
)
def test_a_cycle_is_found_however_it_is_written(tmp_path: Path, second_module: str) -> None:
    write_tree(
        tmp_path,
        {
            "store/__init__.py": "",
            "core/__init__.py": "",
            "tui/__init__.py": "",
            "tui/a.py": "from tui.b import other\nthing = 1\n",
            "tui/b.py": second_module + "other = 2\n",
        },
    )
    assert find_cycles(import_graph(tmp_path)) == [["tui.a", "tui.b", "tui.a"]]


def test_a_longer_cycle_is_shown_as_a_path(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "store/__init__.py": "",
            "core/__init__.py": "",
            "tui/__init__.py": "",
            "tui/a.py": "from tui import b\n",
            "tui/b.py": "from tui import c\nfrom core import x\n",
            "tui/c.py": "def f() -> None:\n    import tui.a\n",
            "core/x.py": "",
        },
    )
    assert find_cycles(import_graph(tmp_path)) == [["tui.a", "tui.b", "tui.c", "tui.a"]]


def test_one_way_imports_and_the_package_init_are_no_cycle(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "store/__init__.py": "",
            "core/__init__.py": "",
            "core/evals/__init__.py": "",
            "core/evals/stats.py": "import math\n",
            "core/evals/judge.py": "from core.evals import stats\n",
            "core/evals/review.py": "from core.evals.judge import x\nfrom core.evals.stats import y\n",
            "tui/__init__.py": "",
        },
    )
    graph = import_graph(tmp_path)
    assert graph["core.evals.judge"] == {"core.evals.stats"}
    assert find_cycles(graph) == []


def test_an_import_against_the_layers_is_named(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "store/__init__.py": "",
            "store/db.py": "def f() -> None:\n    from core.thing import x\n",
            "core/__init__.py": "",
            "core/thing.py": "from store.db import f\nfrom tui.app import App\n",
            "tui/__init__.py": "",
            "tui/app.py": "from core.thing import x\n",
        },
    )
    assert layer_violations(import_graph(tmp_path)) == [
        "core.thing imports tui.app",
        "store.db imports core.thing",
    ]
