"""Every log format ftod imports, in one place, and the choice of format for a log.

Each importer scores how sure it is that a log is its format; the surest reads it (a tie
goes to the one listed first). A new format is one module and one line in IMPORTERS.
"""

from __future__ import annotations

from pathlib import Path

from core.runs.importers.base import ImportedLog, Importer, LogSource, decode, read_bytes
from core.runs.importers.hf_trainer_state import HfTrainerState
from core.runs.importers.llamafactory_trainer_log import LlamaFactoryTrainerLog
from core.runs.importers.openai_results_csv import OpenAiResultsCsv
from core.runs.importers.stdout_metrics import StdoutMetrics
from store.errors import InputError

IMPORTERS: tuple[Importer, ...] = (
    HfTrainerState(),
    LlamaFactoryTrainerLog(),
    OpenAiResultsCsv(),
    StdoutMetrics(),
)

FORMATS: tuple[str, ...] = tuple(importer.name for importer in IMPORTERS)


def _expected(importers: tuple[Importer, ...]) -> str:
    names = [importer.expects for importer in importers]
    listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
    return "expected " + listed


EXPECTED = _expected(IMPORTERS)


def detect(source: LogSource) -> Importer | None:
    """The importer surest that `source` is its format; None when none claims it."""
    best: Importer | None = None
    best_score = 0.0
    for importer in IMPORTERS:
        score = importer.detect(source)
        if score > best_score:
            best, best_score = importer, score
    return best


def detect_format(path: Path) -> str | None:
    """The format id of the log at `path`, or None; InputError when it cannot be read."""
    source = decode(read_bytes(path, EXPECTED), path, EXPECTED)
    if source.damaged_document is not None:
        return None
    importer = detect(source)
    return importer.name if importer is not None else None


def read_log(data: bytes, path: Path) -> ImportedLog:
    """The log in `data` (read from `path`) as events; InputError when it cannot be used."""
    source = decode(data, path, EXPECTED)
    try:
        if source.damaged_document is not None:
            raise InputError(source.damaged_document)
        importer = detect(source)
        if importer is None:
            raise InputError(_unrecognised(source))
        return importer.read(source)
    except InputError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        # The importers check what they read; this only keeps an unforeseen shape from
        # surfacing as a traceback.
        raise InputError(
            f"{path} could not be read as a training log ({type(exc).__name__}: {exc}); {EXPECTED}"
        ) from exc


def _unrecognised(source: LogSource) -> str:
    document = source.document
    if isinstance(document, dict):
        keys = ", ".join(sorted(str(key) for key in document)[:8])
        return (
            f"{source.path} is a JSON object without log_history or current_steps "
            f"(keys: {keys or 'none'}); {EXPECTED}"
        )
    if document is not None:
        return f"{source.path} is JSON of another shape (a {type(document).__name__}); {EXPECTED}"
    return f"{source.path} is not a training log ftod can read; {EXPECTED}"
