"""Custom scorers: functions the user marked with `@scorer("name")` in a file they named.

A scorer file is Python code and runs with the user's permissions, so code only ever comes
from a file named by `--scorer-file PATH` or by `scorer_files` in `.ftod/settings.toml`, never
from a spec: specs (gate specs, `--scorer`) are data that people share, and model output is
attacker-controlled, so a spec that could name any importable function (`shutil:rmtree`,
`builtins:exec`) would be remote code execution. A spec refers to a registered scorer by
name, `custom:NAME`, and nothing else is callable.

    # my_scorers.py
    from core.evals.scorers import scorer

    @scorer("polite")
    def polite(output, reference, example):
        return "please" in output.lower()

    @scorer("overlap", kind="continuous", needs_reference=True)
    def overlap(output, reference, example): ...

Only functions defined in the named file itself are accepted: builtins and library functions
(`exec`, `shutil.rmtree`) cannot be registered, even by a scorer file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import re
import sys
import tomllib
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from core.evals.input_files import check_regular_file, read_small_text
from core.evals.stats import SCORE_KINDS, ScoreKind
from store.errors import InputError

SETTINGS_FILENAME = "settings.toml"
SETTINGS_KEY = "scorer_files"
SCORER_FILE_LIMIT = 4 << 20
SCORER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")

ScorerFunction = TypeVar("ScorerFunction", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class RegisteredScorer:
    name: str
    function: Callable[..., Any] = field(repr=False, compare=False)
    kind: ScoreKind
    needs_reference: bool
    source: Path


@dataclass(slots=True)
class _Loading:
    """The file being executed, and what its decorators registered so far."""

    filename: str
    found: list[RegisteredScorer] = field(default_factory=list)


class _Registry:
    """The scorers of the files the current command named; replaced whole on each load."""

    def __init__(self) -> None:
        self.scorers: dict[str, RegisteredScorer] = {}
        self.sources: tuple[Path, ...] = ()
        self.loading: _Loading | None = None


_REGISTRY = _Registry()


def scorer(
    name: str, *, kind: ScoreKind = "pass_fail", needs_reference: bool = False
) -> Callable[[ScorerFunction], ScorerFunction]:
    """Mark a function of a scorer file as the custom scorer `custom:NAME`.

    The function is called as function(output, reference, example) and returns a bool, a
    finite number (kind="continuous") or None (not applicable). Outside a scorer file that ftod
    is loading (say, the user's own tests importing the module) the decorator registers
    nothing and returns the function unchanged.
    """
    if not isinstance(name, str) or not SCORER_NAME.fullmatch(name):
        raise InputError(
            f"@scorer({name!r}): a scorer name is a letter or _ followed by up to 63 letters, "
            "digits, _ or -"
        )
    if kind not in SCORE_KINDS:
        raise InputError(f"@scorer({name!r}): kind must be one of {', '.join(SCORE_KINDS)}")
    if not isinstance(needs_reference, bool):
        raise InputError(f"@scorer({name!r}): needs_reference must be True or False")

    def register(function: ScorerFunction) -> ScorerFunction:
        loading = _REGISTRY.loading
        if loading is None:
            return function
        # A builtin (exec) is not a Python function; a library function (shutil.rmtree) has
        # its code in another file. Neither was written as a scorer by the file's author.
        defined_here = (
            inspect.isfunction(function) and function.__code__.co_filename == loading.filename
        )
        if not defined_here:
            raise InputError(
                f"@scorer({name!r}) in {loading.filename}: only a function defined in the "
                f"scorer file itself can be a scorer, not {function!r} (builtins and library "
                "functions never are; wrap one in a def of your own if you mean it)"
            )
        if any(entry.name == name for entry in loading.found):
            raise InputError(f"{loading.filename} registers the scorer {name!r} twice")
        loading.found.append(
            RegisteredScorer(name, function, kind, needs_reference, Path(loading.filename))
        )
        return function

    return register


def _module_name(path: Path) -> str:
    # A name of its own per file: a scorer file is not importable by its stem, and must not
    # shadow (or be shadowed by) a module on sys.path such as `scorers` or `test`.
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return f"ftod_scorer_file_{digest}"


def _load_file(path: Path) -> list[RegisteredScorer]:
    check_regular_file(path, "scorer file", SCORER_FILE_LIMIT)
    module_name = _module_name(path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"scorer file {path}: not a Python file (name it *.py)")
    module = importlib.util.module_from_spec(spec)
    loading = _Loading(str(path))
    previous, _REGISTRY.loading = _REGISTRY.loading, loading
    # In sys.modules while it runs, as an import would be: dataclasses and pickling look
    # their module up there.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except InputError as error:
        sys.modules.pop(module_name, None)
        raise InputError(error.message, title="Bad scorer file") from error
    except Exception as error:  # the user's code failed to load: their input, not ftod's bug
        sys.modules.pop(module_name, None)
        raise InputError(
            f"scorer file {path} failed to load ({type(error).__name__}: {error})",
            title="Bad scorer file",
        ) from error
    finally:
        _REGISTRY.loading = previous
    return loading.found


def load_scorer_files(
    paths: Iterable[Path], reserved: Collection[str] = ()
) -> tuple[RegisteredScorer, ...]:
    """Run each scorer file and make its `@scorer` functions the registered custom scorers.

    Replaces whatever an earlier call registered (so one command never sees another's
    scorers). `reserved` names (the built-in scorer families) cannot be registered.
    """
    resolved = tuple(dict.fromkeys(Path(path).expanduser().resolve() for path in paths))
    found: dict[str, RegisteredScorer] = {}
    for path in resolved:
        for entry in _load_file(path):
            if entry.name in reserved:
                raise InputError(
                    f"scorer file {path}: {entry.name!r} is the name of a built-in scorer; "
                    "give the custom scorer another name",
                    title="Bad scorer file",
                )
            other = found.get(entry.name)
            if other is not None:
                raise InputError(
                    f"the scorer {entry.name!r} is registered by both {other.source} and {path}",
                    title="Bad scorer file",
                )
            found[entry.name] = entry
    _REGISTRY.scorers = found
    _REGISTRY.sources = resolved
    return tuple(found.values())


def registered_scorers() -> tuple[RegisteredScorer, ...]:
    return tuple(_REGISTRY.scorers.values())


def registered_scorer(name: str) -> RegisteredScorer:
    """The registered scorer `name`, or InputError saying how to register one."""
    if ":" in name or "." in name:
        raise InputError(
            f"custom scorer {name!r}: ftod no longer imports module:function paths (a spec "
            "could run any function, builtins included, on model output). Mark your function "
            '@scorer("NAME") (from core.evals.scorers import scorer) in a file, pass '
            "--scorer-file FILE (or list it under scorer_files in .ftod/settings.toml) and "
            "refer to it as custom:NAME",
            title="Not a registered scorer",
        )
    entry = _REGISTRY.scorers.get(name)
    if entry is not None:
        return entry
    if _REGISTRY.scorers:
        known = f"registered: {', '.join(sorted(_REGISTRY.scorers))}"
    elif _REGISTRY.sources:
        known = f"{', '.join(map(str, _REGISTRY.sources))} register no scorer"
    else:
        known = "no scorer file was named"
    raise InputError(
        f"custom scorer {name!r} is not registered ({known}); mark a function "
        f'@scorer("{name}") in a scorer file and pass it with --scorer-file FILE',
        title="Not a registered scorer",
    )


def settings_scorer_files(workspace_root: Path) -> list[Path]:
    """The `scorer_files` of `.ftod/settings.toml`, relative to the folder holding `.ftod/`.

    No settings file, or no such key: none. A settings file that cannot be read, or a key that
    is not a list of paths, is refused rather than ignored: ignoring it would silently drop the
    scorers a gate depends on.
    """
    path = workspace_root / SETTINGS_FILENAME
    if not path.exists():
        return []
    text = read_small_text(path, "workspace settings")
    try:
        settings = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"workspace settings {path}: not valid TOML ({error})") from error
    listed = settings.get(SETTINGS_KEY, [])
    if not isinstance(listed, list) or not all(isinstance(item, str) and item for item in listed):
        raise InputError(f"workspace settings {path}: {SETTINGS_KEY} must be a list of file paths")
    project = workspace_root.parent
    return [project / Path(item).expanduser() for item in listed]
