"""The run config: YAML in, a typed, fully-defaulted RunConfig out, every mistake named.

Only the shape and ranges are checked here (no torch, no store): what needs the model or
the dataset is checked by `core.runs.validate` before launch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from store.errors import InputError

SCHEDULERS = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
ALL_LINEAR = "all-linear"


@dataclass(frozen=True, slots=True)
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | tuple[str, ...] = ALL_LINEAR


@dataclass(frozen=True, slots=True)
class QloraConfig:
    enabled: bool = False
    quant_type: str = "nf4"
    double_quant: bool = True


@dataclass(frozen=True, slots=True)
class TrainConfig:
    lr: float = 2e-4
    scheduler: str = "cosine"
    warmup: float = 0.03
    """A fraction of the total steps when below 1, else a number of steps."""
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 4
    """Rows per micro-batch: packed rows of max_seq_len tokens when packing, else examples."""
    tokens_per_step: int | None = None
    """When set, grad_accum is derived so each optimizer step sees about this many tokens."""
    grad_accum: int = 1
    max_seq_len: int = 2048
    packing: bool = True
    gradient_checkpointing: bool = False
    precision: str = "auto"
    seed: int = 0
    eval_every: int = 50
    early_stopping_patience: int | None = None
    save_every: int = 100
    keep_checkpoints: int = 2
    torch_compile: bool = False
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    log_every: int = 1


@dataclass(frozen=True, slots=True)
class RunConfig:
    base_model: str
    dataset: str
    name: str = ""
    revision: str | None = None
    train_split: str | None = "train"
    val_split: str | None = "val"
    lora: LoraConfig = field(default_factory=LoraConfig)
    qlora: QloraConfig = field(default_factory=QloraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def as_json(self) -> dict[str, Any]:
        payload = asdict(self)
        target = payload["lora"]["target_modules"]
        payload["lora"]["target_modules"] = target if isinstance(target, str) else list(target)
        return payload

    def as_yaml(self) -> str:
        payload = self.as_json()
        splits = {"train": payload.pop("train_split"), "val": payload.pop("val_split")}
        ordered = {
            "name": payload.pop("name"),
            "base_model": payload.pop("base_model"),
            "revision": payload.pop("revision"),
            "dataset": payload.pop("dataset"),
            "splits": splits,
            **payload,
        }
        if ordered["revision"] is None:
            del ordered["revision"]
        return yaml.safe_dump(ordered, sort_keys=False)

    def config_hash(self) -> str:
        canonical = json.dumps(self.as_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def effective_grad_accum(self) -> int:
        train = self.train
        if train.tokens_per_step is None:
            return train.grad_accum
        per_micro = train.batch_size * train.max_seq_len
        return max(1, math.ceil(train.tokens_per_step / per_micro))


def _fail(where: str, problem: str) -> InputError:
    return InputError(f"{where}: {problem}", title="Bad run config")


def _section(
    raw: Any, cls: type[Any], where: str, *, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(where, f"expected a mapping, got {type(raw).__name__}")
    known = {f.name for f in fields(cls)} | set(extra or {})
    unknown = sorted(set(raw) - known)
    if unknown:
        raise _fail(
            f"{where}.{unknown[0]}",
            f"unknown key (known keys: {', '.join(sorted(known - set(extra or {})))})",
        )
    return dict(raw)


def _number(
    values: dict[str, Any],
    key: str,
    where: str,
    *,
    kind: type[int] | type[float],
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    optional: bool = False,
) -> None:
    if key not in values:
        return
    value = values[key]
    if value is None and optional:
        return
    if isinstance(value, str) and kind is float:
        # YAML reads "2e-4" (no dot) as a string.
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"{where}.{key}", f"expected a number, got {value!r}")
    if kind is int and (not float(value).is_integer()):
        raise _fail(f"{where}.{key}", f"expected a whole number, got {value!r}")
    if not math.isfinite(float(value)):
        raise _fail(f"{where}.{key}", f"expected a finite number, got {value!r}")
    if minimum is not None and (value < minimum or (exclusive_minimum and value == minimum)):
        bound = f"> {minimum}" if exclusive_minimum else f">= {minimum}"
        raise _fail(f"{where}.{key}", f"must be {bound}, got {value!r}")
    if maximum is not None and value > maximum:
        raise _fail(f"{where}.{key}", f"must be <= {maximum}, got {value!r}")
    values[key] = int(value) if kind is int else float(value)


def _boolean(values: dict[str, Any], key: str, where: str) -> None:
    if key in values and not isinstance(values[key], bool):
        raise _fail(f"{where}.{key}", f"expected true or false, got {values[key]!r}")


def _choice(values: dict[str, Any], key: str, where: str, choices: tuple[str, ...]) -> None:
    if key in values and values[key] not in choices:
        raise _fail(f"{where}.{key}", f"expected one of {', '.join(choices)}, got {values[key]!r}")


def parse_run_config(raw: Any, *, default_name: str = "") -> RunConfig:
    """Validate a parsed YAML document and fill in every default."""
    top = _section(raw, RunConfig, "config", extra={"splits": None})
    for required in ("base_model", "dataset"):
        value = top.get(required)
        if not isinstance(value, str) or not value.strip():
            raise _fail(required, "required; " + _REQUIRED_HINT[required])
    for key in ("name", "revision"):
        if top.get(key) is not None and not isinstance(top[key], str):
            raise _fail(key, f"expected a string, got {top[key]!r}")

    splits = top.pop("splits", None)
    if splits is not None:
        split_values = _section(splits, _Splits, "splits")
        for key in ("train", "val"):
            value = split_values.get(key)
            if value is not None and not isinstance(value, str):
                raise _fail(f"splits.{key}", f"expected a split name or null, got {value!r}")
            top[f"{key}_split"] = split_values.get(key, "train" if key == "train" else None)

    lora = _section(top.pop("lora", None), LoraConfig, "lora")
    _number(lora, "r", "lora", kind=int, minimum=1, maximum=4096)
    _number(lora, "alpha", "lora", kind=float, minimum=0, exclusive_minimum=True)
    if "alpha" in lora and float(lora["alpha"]).is_integer():
        lora["alpha"] = int(lora["alpha"])
    _number(lora, "dropout", "lora", kind=float, minimum=0, maximum=0.9)
    if "target_modules" in lora:
        target = lora["target_modules"]
        if isinstance(target, str) and target == ALL_LINEAR:
            pass
        elif isinstance(target, list) and target and all(isinstance(t, str) and t for t in target):
            lora["target_modules"] = tuple(target)
        else:
            raise _fail(
                "lora.target_modules",
                f"expected a list of module names (e.g. [q_proj, v_proj]) or {ALL_LINEAR!r}, "
                f"got {target!r}",
            )

    qlora_raw = top.pop("qlora", None)
    if isinstance(qlora_raw, bool):
        qlora_raw = {"enabled": qlora_raw}
    qlora = _section(qlora_raw, QloraConfig, "qlora")
    _boolean(qlora, "enabled", "qlora")
    _boolean(qlora, "double_quant", "qlora")
    _choice(qlora, "quant_type", "qlora", ("nf4", "fp4"))

    train = _section(top.pop("train", None), TrainConfig, "train")
    _number(train, "lr", "train", kind=float, minimum=0, exclusive_minimum=True)
    _choice(train, "scheduler", "train", SCHEDULERS)
    _number(train, "warmup", "train", kind=float, minimum=0)
    _number(train, "epochs", "train", kind=float, minimum=0, exclusive_minimum=True)
    _number(train, "max_steps", "train", kind=int, minimum=1, optional=True)
    _number(train, "batch_size", "train", kind=int, minimum=1)
    _number(train, "tokens_per_step", "train", kind=int, minimum=1, optional=True)
    _number(train, "grad_accum", "train", kind=int, minimum=1)
    _number(train, "max_seq_len", "train", kind=int, minimum=16)
    _boolean(train, "packing", "train")
    _boolean(train, "gradient_checkpointing", "train")
    _choice(train, "precision", "train", PRECISIONS)
    _number(train, "seed", "train", kind=int, minimum=0)
    _number(train, "eval_every", "train", kind=int, minimum=1)
    _number(train, "early_stopping_patience", "train", kind=int, minimum=1, optional=True)
    _number(train, "save_every", "train", kind=int, minimum=1)
    _number(train, "keep_checkpoints", "train", kind=int, minimum=1)
    _boolean(train, "torch_compile", "train")
    _number(train, "weight_decay", "train", kind=float, minimum=0)
    _number(train, "max_grad_norm", "train", kind=float, minimum=0)
    _number(train, "log_every", "train", kind=int, minimum=1)
    if train.get("early_stopping_patience") and top.get("val_split", "val") is None:
        raise _fail("train.early_stopping_patience", "needs a validation split (splits.val)")

    name = top.pop("name", None) or default_name
    return RunConfig(
        name=name,
        lora=LoraConfig(**lora),
        qlora=QloraConfig(**qlora),
        train=TrainConfig(**train),
        **top,
    )


@dataclass(frozen=True, slots=True)
class _Splits:
    train: str | None = "train"
    val: str | None = "val"


_REQUIRED_HINT = {
    "base_model": "a local Hugging Face model folder, or a hub id already in the local HF cache",
    "dataset": "a dataset version such as support@1 (see `ftod data list`)",
}


def load_run_config(path: Path) -> RunConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise InputError(f"{path}: no such run config", title="Bad run config") from error
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read ({error})", title="Bad run config") from error
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({error})", title="Bad run config") from error
    return parse_run_config(raw, default_name=path.stem)


def run_config_from_json(payload: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig from `RunConfig.as_json()` output (run.json)."""
    data = dict(payload)
    train_split = data.pop("train_split", "train")
    val_split = data.pop("val_split", None)
    data["splits"] = {"train": train_split, "val": val_split}
    return parse_run_config(data)
