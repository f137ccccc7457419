"""Everything checked before a trainer starts, each problem named with its fix.

Loads the model's config and tokenizer (never its weights) and instantiates the model on
the meta device to list its linear layers, so a misspelt target module fails in seconds
rather than after the weights have loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.model_files import check_model_files
from core.runs.config import ALL_LINEAR, RunConfig
from core.safefiles import atomic_write_text
from store.datasets import DatasetRepository, SplitRecord, VersionRecord
from store.errors import InputError, NotFoundError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    source: str
    """What the config named (a folder or a hub id)."""
    path: Path
    revision: str | None
    """The hub commit of a cached snapshot; None for a plain folder."""
    weights_sha256: str | None
    """A digest of the weight files, for folders that have no hub revision."""
    context_length: int | None
    model_type: str | None
    linear_modules: tuple[str, ...]
    parameters: int


@dataclass(frozen=True, slots=True)
class ResolvedData:
    version: VersionRecord
    split: SplitRecord | None


def resolve_model_path(
    source: str, revision: str | None, *, allow_download: bool
) -> tuple[Path, str | None]:
    folder = Path(source).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise InputError(
                f"base_model {source}: the folder has no config.json; point it at a Hugging "
                "Face model folder (the one holding config.json and the weights)",
                title="Bad run config",
            )
        return folder.resolve(), None
    if source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise InputError(
            f"base_model {source}: no such folder, and not a hub id of the form org/name",
            title="Bad run config",
        )
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(source, revision=revision, local_files_only=True)
    except Exception as error:
        if not allow_download:
            raise InputError(
                f"base_model {source}: not in the local Hugging Face cache "
                f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}); pass --allow-download "
                "to fetch it, or give a local model folder",
                title="Model not available offline",
            ) from error
        try:
            path = snapshot_download(source, revision=revision)
        except Exception as download_error:
            raise InputError(
                f"base_model {source}: download failed ({download_error})",
                title="Model download failed",
            ) from download_error
    resolved = Path(path)
    return resolved, resolved.name


def weights_digest(folder: Path, cache_file: Path | None) -> str:
    """sha256 over the weight files' names and bytes, cached by (size, mtime) per file."""
    cache: dict[str, Any] = {}
    if cache_file is not None and cache_file.is_file():
        try:
            cache = json.loads(cache_file.read_text())
        except ValueError:
            cache = {}
    digest = hashlib.sha256()
    changed = False
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    for path in files:
        stat = path.stat()
        key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        file_hash = cache.get(key)
        if file_hash is None:
            hasher = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 22):
                    hasher.update(chunk)
            file_hash = hasher.hexdigest()
            cache[key] = file_hash
            changed = True
        digest.update(f"{path.relative_to(folder)}\0{file_hash}\n".encode())
    if changed and cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache_file, json.dumps(cache))
    return digest.hexdigest()


def inspect_model(path: Path) -> tuple[Any, tuple[str, ...], int]:
    """(config, names of linear layers, parameter count) without loading weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except Exception as error:
        raise InputError(
            f"base_model {path}: its config.json cannot be read by transformers ({error})",
            title="Bad model",
        ) from error
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    except Exception as error:
        raise InputError(
            f"base_model {path}: transformers cannot build a causal LM from it ({error})",
            title="Bad model",
        ) from error
    output = model.get_output_embeddings()
    names = sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not output
        }
    )
    parameters = sum(p.numel() for p in model.parameters())
    return config, tuple(names), parameters


def context_length(config: Any) -> int | None:
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    text_config = getattr(config, "text_config", None)
    return context_length(text_config) if text_config is not None else None


def validate_model(
    config: RunConfig, *, allow_download: bool, cache_dir: Path | None = None
) -> ResolvedModel:
    path, revision = resolve_model_path(
        config.base_model, config.revision, allow_download=allow_download
    )
    model_config, linear, parameters = inspect_model(path)
    # inspect_model builds the model on the meta device, never reading the weights: a
    # truncated model.safetensors or tokenizer.json would only fail in the trainer.
    check_model_files(path)
    limit = context_length(model_config)
    if limit is not None and config.train.max_seq_len > limit:
        raise InputError(
            f"train.max_seq_len {config.train.max_seq_len} is beyond the model's context of "
            f"{limit} tokens; set train.max_seq_len to at most {limit}",
            title="Bad run config",
        )
    target = config.lora.target_modules
    if target != ALL_LINEAR:
        unknown = [name for name in target if name not in linear]
        if unknown:
            raise InputError(
                f"lora.target_modules: {', '.join(unknown)} not in this model; its linear "
                f"layers are {', '.join(linear)} (or use {ALL_LINEAR})",
                title="Bad run config",
            )
    _check_tokenizer(path)
    if config.qlora.enabled:
        _check_qlora()
    digest = None
    if revision is None:
        digest = weights_digest(path, cache_dir / "weights.json" if cache_dir else None)
    return ResolvedModel(
        source=config.base_model,
        path=path,
        revision=revision,
        weights_sha256=digest,
        context_length=limit,
        model_type=getattr(model_config, "model_type", None),
        linear_modules=linear,
        parameters=parameters,
    )


def _check_tokenizer(path: Path) -> None:
    template = None
    for name in ("tokenizer_config.json",):
        candidate = path / name
        if candidate.is_file():
            try:
                template = json.loads(candidate.read_text()).get("chat_template")
            except ValueError:
                template = None
    if template is None and (path / "chat_template.jinja").is_file():
        template = "file"
    if template is None and (path / "chat_template.json").is_file():
        template = "file"
    if not (path / "tokenizer.json").is_file():
        raise InputError(
            f"base_model {path}: no tokenizer.json (a fast tokenizer is needed to mask the "
            "loss to assistant turns)",
            title="Bad model",
        )
    if not template:
        raise InputError(
            f"base_model {path}: the tokenizer has no chat template; use the instruct "
            "model's tokenizer or add `chat_template` to tokenizer_config.json",
            title="Bad model",
        )


def _check_qlora() -> None:
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise InputError(
            "qlora: 4-bit QLoRA needs a CUDA GPU and none is visible; set qlora: false to "
            "train plain LoRA",
            title="QLoRA unavailable",
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise InputError(
            "qlora: bitsandbytes is not installed; `pip install 'ftod[qlora]'` "
            "(or pip install bitsandbytes), or set qlora: false",
            title="QLoRA unavailable",
        )


def validate_data(config: RunConfig, repository: DatasetRepository) -> ResolvedData:
    try:
        version = repository.version(config.dataset)
    except NotFoundError as error:
        raise NotFoundError(
            f"dataset {config.dataset}: {error.message} (see `ftod data list`)"
        ) from error
    wanted = [s for s in (config.train_split, config.val_split) if s is not None]
    if not wanted:
        return ResolvedData(version, None)
    splits = repository.splits(version.version_id)
    if not splits:
        raise NotFoundError(
            f"{version.ref} has no splits; run `ftod data split {version.ref}`, or set "
            "`splits: {train: null, val: null}` to train on the whole version without "
            "validation"
        )
    split = splits[-1]
    known = sorted(split.manifest.get("splits", {}))
    for name in wanted:
        if name not in known:
            raise NotFoundError(
                f"split {name!r} does not exist in {version.ref} (splits: {', '.join(known)})"
            )
    return ResolvedData(version, split)
