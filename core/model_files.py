"""Cheap integrity checks of a model folder's files, without loading any weights.

A truncated download or copy is common (a full disk, an interrupted `cp`), and transformers
reports it late and obscurely: `train`'s pre-launch check builds the model on the meta device
and never opens the weights, and the trainer would fail minutes later. A safetensors file
states its own length (an 8-byte header size, a JSON header, then every tensor's byte range),
so reading the header alone proves whether the file is whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from store.errors import InputError

HEADER_LIMIT = 100 * 1024 * 1024
"""The safetensors library's own limit on the JSON header."""


def _bad(path: Path, problem: str) -> InputError:
    return InputError(
        f"{path}: {problem}; the file is incomplete or damaged (download or copy it again)",
        title="Bad model file",
    )


def check_safetensors(path: Path) -> None:
    """InputError unless `path` is a whole safetensors file: its header parses and every
    tensor's bytes lie inside the file."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise _bad(path, f"{size} bytes, too short for a safetensors header")
        header_size = int.from_bytes(prefix, "little")
        if header_size > HEADER_LIMIT or 8 + header_size > size:
            raise _bad(path, f"its header claims {header_size:,} bytes of a {size:,}-byte file")
        try:
            header: Any = json.loads(handle.read(header_size))
        except (ValueError, UnicodeDecodeError) as error:
            raise _bad(path, f"its header is not JSON ({error})") from error
    if not isinstance(header, dict):
        raise _bad(path, "its header is not a JSON object")
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(offset, int) and offset >= 0 for offset in offsets)
        ):
            raise _bad(path, f"tensor {name!r} has no valid data_offsets")
        data_end = max(data_end, offsets[1])
    expected = 8 + header_size + data_end
    if size < expected:
        raise _bad(path, f"{size:,} bytes where its header describes {expected:,}")


def check_tokenizer_json(path: Path) -> None:
    """InputError unless the tokenizers library can load `path` (a truncated tokenizer.json
    is not JSON; a damaged one may be JSON that is no tokenizer)."""
    from tokenizers import Tokenizer

    try:
        Tokenizer.from_file(str(path))
    except Exception as error:  # the Rust library raises bare Exception for any bad file
        raise _bad(path, f"the tokenizers library cannot load it ({error})") from error


def check_model_files(folder: Path) -> None:
    """Every safetensors file, the shards an index names, and tokenizer.json of `folder`."""
    for path in sorted(folder.glob("*.safetensors")):
        check_safetensors(path)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        except (OSError, ValueError, AttributeError) as error:
            raise _bad(index, f"it cannot be read as a shard index ({error})") from error
        if not isinstance(weight_map, dict):
            raise _bad(index, "its weight_map is not an object")
        missing = sorted(
            {str(shard) for shard in weight_map.values() if not (folder / str(shard)).is_file()}
        )
        if missing:
            raise _bad(index, f"it names shards that are not in the folder: {', '.join(missing)}")
    tokenizer = folder / "tokenizer.json"
    if tokenizer.is_file():
        check_tokenizer_json(tokenizer)
