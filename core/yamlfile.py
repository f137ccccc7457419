"""The one way ftod reads a YAML file a person wrote: run configs, prompts, gate specs.

Every failure is an InputError naming the file: a missing or non-regular file, one too big
to be a hand-written config, bytes that are not UTF-8, YAML that does not parse, and YAML
nested so deeply that PyYAML's recursive composer runs out of stack (RecursionError,
which would otherwise surface as an internal error).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from store.errors import InputError

MAX_YAML_BYTES = 1024**2
"""A hand-written config is a few KiB; anything near this is a mistake or an attack."""


def load_yaml_file(
    path: Path | str,
    *,
    what: str,
    title: str | None = None,
    max_bytes: int = MAX_YAML_BYTES,
) -> Any:
    """The parsed document in `path`; `what` names the file in errors ("run config")."""
    path = Path(path)

    def fail(problem: str) -> InputError:
        return InputError(f"{path}: {problem}", title=title)

    not_regular = f"not a regular file (a {what} must be a YAML file)"
    try:
        # Checked before it is opened: opening a FIFO would wait for a writer forever.
        if not stat.S_ISREG(path.stat().st_mode):
            raise fail(not_regular)
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_bytes:
                raise fail(f"{size} bytes is too big for a {what} (at most {max_bytes})")
            # One byte past the limit tells a file that grew since the check.
            data = handle.read(max_bytes + 1)
    except FileNotFoundError as error:
        raise fail(f"no such {what}") from error
    except OSError as error:
        raise fail(f"cannot read ({error})") from error
    if len(data) > max_bytes:
        raise fail(f"too big for a {what} (at most {max_bytes} bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise fail(f"cannot read ({error})") from error
    try:
        return yaml.safe_load(text)
    except RecursionError as error:
        raise fail("not valid YAML (nested too deeply to read)") from error
    except yaml.YAMLError as error:
        raise fail(f"not valid YAML ({error})") from error
