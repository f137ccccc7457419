"""The run config: YAML in, a typed, fully-defaulted RunConfig out, every mistake named.

The dataclasses below are the one schema of a run config: each field's type and default
are the dataclass field's own, and its metadata (a `Setting`) holds its label, help, range
or choices and what leaving it empty means. The parser, the launch form's sections and the
README's reference table (`python -m core.runs.config --update README.md`) are all derived
from it.

Only the shape and ranges are checked here (no torch, no store): what needs the model or
the dataset is checked by `core.runs.validate` before launch.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import reprlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_type_hints

import yaml

from core.runs.limits import (
    BATCH_SIZE_LIMIT,
    MAX_SEQ_LEN_LIMIT,
    MAX_STEPS_LIMIT,
    MIN_SEQ_LEN,
    SEED_LIMIT,
    TOKENS_PER_STEP_LIMIT,
)
from core.yamlfile import load_yaml_file
from store.errors import InputError

SCHEDULERS = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
QUANT_TYPES = ("nf4", "fp4")
ALL_LINEAR = "all-linear"

SETTING_KEY = "ftod.setting"
SECTION_KEY = "ftod.section"
RUN_SECTION = "Run"
"""The section of the settings that sit at the top of the YAML (name, model, dataset…)."""

Bound = int | float


@dataclass(frozen=True, slots=True)
class Setting:
    """How one run-config field is explained and bounded (its type and default are the
    dataclass field's own)."""

    label: str
    """The short name the launch form shows beside the field."""
    help: str
    """One line on what the value does: the form's tooltip, the README's description."""
    minimum: Bound | None = None
    maximum: Bound | None = None
    exclusive_minimum: bool = False
    choices: tuple[str, ...] = ()
    placeholder: str = ""
    """What an empty field shows: what leaving it empty means, or an example value."""
    key: str | None = None
    """The dotted YAML key where it is not the dataclass path (train_split is splits.train)."""
    shapes_memory: bool = False
    """Whether a change can move the VRAM estimate."""


def describe(label: str, help_text: str, **rules: Any) -> dict[str, Setting]:
    """Field metadata holding the field's Setting: `field(default=..., metadata=describe(...))`."""
    return {SETTING_KEY: Setting(label, help_text, **rules)}


def section(title: str) -> dict[str, str]:
    """Field metadata of a nested dataclass: the title its settings are grouped under."""
    return {SECTION_KEY: title}


@dataclass(frozen=True, slots=True)
class LoraConfig:
    r: int = field(
        default=16,
        metadata=describe("r", "Adapter rank", minimum=1, maximum=4096, shapes_memory=True),
    )
    # A whole number, as PEFT's lora_alpha is.
    alpha: int = field(
        default=32,
        metadata=describe(
            "alpha",
            "Scaling: updates are multiplied by α/r",
            minimum=1,
            maximum=65_536,
            shapes_memory=True,
        ),
    )
    dropout: float = field(
        default=0.05,
        metadata=describe(
            "dropout", "Dropout on the adapter's input", minimum=0, maximum=0.9, shapes_memory=True
        ),
    )
    target_modules: str | tuple[str, ...] = field(
        default=ALL_LINEAR,
        metadata=describe(
            "targets",
            f"Linear layers to adapt: a comma list (q_proj, v_proj) or {ALL_LINEAR}",
            shapes_memory=True,
        ),
    )


@dataclass(frozen=True, slots=True)
class QloraConfig:
    enabled: bool = field(
        default=False,
        metadata=describe("4-bit QLoRA", "Load the base model in 4 bits", shapes_memory=True),
    )
    quant_type: str = field(
        default="nf4",
        metadata=describe("quant type", "4-bit data type", choices=QUANT_TYPES, shapes_memory=True),
    )
    double_quant: bool = field(
        default=True,
        metadata=describe(
            "double quant",
            "Quantize the quantization constants too (saves ~0.4 bit per weight)",
            shapes_memory=True,
        ),
    )


@dataclass(frozen=True, slots=True)
class TrainConfig:
    lr: float = field(
        default=2e-4,
        # Far past any useful rate, yet room to drive a run to divergence on purpose.
        metadata=describe(
            "lr", "Peak learning rate", minimum=0, exclusive_minimum=True, maximum=1e6
        ),
    )
    scheduler: str = field(
        default="cosine",
        metadata=describe("scheduler", "Learning-rate schedule", choices=SCHEDULERS),
    )
    warmup: float = field(
        default=0.03,
        metadata=describe(
            "warmup",
            "Below 1: a share of the steps; else steps",
            minimum=0,
            maximum=MAX_STEPS_LIMIT,
        ),
    )
    epochs: float = field(
        default=1.0,
        metadata=describe(
            "epochs",
            "Passes over the training split",
            minimum=0,
            exclusive_minimum=True,
            maximum=100_000,
        ),
    )
    max_steps: int | None = field(
        default=None,
        metadata=describe(
            "max steps",
            "Stop after this many optimizer steps; empty runs the epochs",
            minimum=1,
            maximum=MAX_STEPS_LIMIT,
            placeholder="(epochs decide)",
        ),
    )
    batch_size: int = field(
        default=4,
        metadata=describe(
            "batch size",
            "Rows per micro-batch (packed rows of max_seq_len tokens when packing)",
            minimum=1,
            maximum=BATCH_SIZE_LIMIT,
            shapes_memory=True,
        ),
    )
    tokens_per_step: int | None = field(
        default=None,
        metadata=describe(
            "tokens/step",
            "When set, grad_accum is derived to see about this many tokens per step",
            minimum=1,
            maximum=TOKENS_PER_STEP_LIMIT,
            placeholder="(use grad accum)",
        ),
    )
    grad_accum: int = field(
        default=1,
        metadata=describe(
            "grad accum", "Micro-batches per step", minimum=1, maximum=BATCH_SIZE_LIMIT
        ),
    )
    max_seq_len: int = field(
        default=2048,
        metadata=describe(
            "max seq len",
            "Tokens per row at most",
            minimum=MIN_SEQ_LEN,
            maximum=MAX_SEQ_LEN_LIMIT,
            shapes_memory=True,
        ),
    )
    packing: bool = field(
        default=True,
        metadata=describe("packing", "Pack several examples into each row", shapes_memory=True),
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata=describe(
            "grad checkpoint",
            "Recompute activations in backward: far less memory, ~30% slower",
            shapes_memory=True,
        ),
    )
    precision: str = field(
        default="auto",
        metadata=describe(
            "precision",
            "Compute dtype; auto is bf16 where supported",
            choices=PRECISIONS,
            shapes_memory=True,
        ),
    )
    seed: int = field(
        default=0,
        metadata=describe(
            "seed", "Seed for shuffling, dropout and init", minimum=0, maximum=SEED_LIMIT
        ),
    )
    eval_every: int = field(
        default=50,
        metadata=describe(
            "eval every", "Steps between evaluations", minimum=1, maximum=MAX_STEPS_LIMIT
        ),
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata=describe(
            "early stop",
            "Stop after this many evals without val-loss improvement (the best adapter is kept); "
            "empty never stops",
            minimum=1,
            maximum=MAX_STEPS_LIMIT,
            placeholder="(never)",
        ),
    )
    save_every: int = field(
        default=100,
        metadata=describe(
            "save every", "Steps between checkpoints", minimum=1, maximum=MAX_STEPS_LIMIT
        ),
    )
    keep_checkpoints: int = field(
        default=2,
        metadata=describe("keep ckpts", "Checkpoints kept on disk", minimum=1, maximum=10_000),
    )
    torch_compile: bool = field(
        default=False,
        metadata=describe("torch.compile", "Compile the model (slow start)", shapes_memory=True),
    )
    weight_decay: float = field(
        default=0.0,
        metadata=describe("weight decay", "AdamW weight decay", minimum=0, maximum=1),
    )
    max_grad_norm: float = field(
        default=1.0,
        metadata=describe(
            "max grad norm", "Gradient clipping; 0 is off", minimum=0, maximum=1_000_000
        ),
    )
    log_every: int = field(
        default=1,
        metadata=describe(
            "log every", "Steps between metric lines", minimum=1, maximum=MAX_STEPS_LIMIT
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    name: str = field(
        default="",
        metadata=describe(
            "name",
            "Run name (empty: the YAML file's name); also names the saved YAML file",
        ),
    )
    base_model: str = field(
        metadata=describe(
            "base model",
            "A Hugging Face model folder (holding config.json), or a hub id in the local cache",
            placeholder="path/to/model or org/name",
            shapes_memory=True,
        )
    )
    revision: str | None = field(
        default=None,
        metadata=describe(
            "revision",
            "Hub revision of a cached model; empty for a folder or the cached snapshot",
            placeholder="(none)",
            shapes_memory=True,
        ),
    )
    dataset: str = field(
        metadata=describe(
            "dataset",
            "A dataset version, NAME@VERSION (see `ftod data list`)",
            placeholder="NAME@V",
        )
    )
    train_split: str | None = field(
        default="train",
        metadata=describe(
            "train split",
            "The split trained on; empty trains on the whole version",
            placeholder="(whole version)",
            key="splits.train",
        ),
    )
    val_split: str | None = field(
        default="val",
        metadata=describe(
            "val split",
            "The split evaluated on; empty for no validation",
            placeholder="(none)",
            key="splits.val",
        ),
    )
    lora: LoraConfig = field(default_factory=LoraConfig, metadata=section("LoRA"))
    qlora: QloraConfig = field(default_factory=QloraConfig, metadata=section("QLoRA"))
    train: TrainConfig = field(default_factory=TrainConfig, metadata=section("Training"))

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


# -- the schema, read off the dataclasses --------------------------------------------------

FieldKind = Literal[
    "text", "optional_text", "choice", "int", "optional_int", "float", "bool", "targets"
]

# The Python type of each field, mapped to how its YAML value is read.
_KINDS: tuple[tuple[Any, FieldKind], ...] = (
    (bool, "bool"),
    (int, "int"),
    (int | None, "optional_int"),
    (float, "float"),
    (str, "text"),
    (str | None, "optional_text"),
    (str | tuple[str, ...], "targets"),
)


@dataclass(frozen=True, slots=True)
class ConfigField:
    """One run-config setting: where it sits in the YAML and in RunConfig, and its rules."""

    path: str
    """The dotted YAML key, e.g. train.lr or splits.val; also the prefix of its errors."""
    section: str
    """The title it is grouped under (the form's sections, the README's tables)."""
    owner: str | None
    """The RunConfig attribute holding its dataclass (lora, train), None for RunConfig's own."""
    attribute: str
    kind: FieldKind
    default: Any
    """The dataclass default, or dataclasses.MISSING for a required field."""
    setting: Setting

    @property
    def required(self) -> bool:
        return self.default is dataclasses.MISSING

    @property
    def optional(self) -> bool:
        """Whether null (an empty form field) is a valid value."""
        return self.kind in ("optional_int", "optional_text")

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "optional_int", "float")


def _kind_of(annotation: Any, setting: Setting, where: str) -> FieldKind:
    for python_type, kind in _KINDS:
        if annotation == python_type:
            return "choice" if kind == "text" and setting.choices else kind
    raise TypeError(f"{where}: no reader for a field of type {annotation!r}")


def _config_field(
    field_: dataclasses.Field[Any], annotation: Any, *, owner: str | None, title: str
) -> ConfigField:
    setting: Setting = field_.metadata[SETTING_KEY]
    default_path = field_.name if owner is None else f"{owner}.{field_.name}"
    path = setting.key or default_path
    return ConfigField(
        path=path,
        section=title,
        owner=owner,
        attribute=field_.name,
        kind=_kind_of(annotation, setting, path),
        default=field_.default,
        setting=setting,
    )


@functools.cache
def config_schema() -> tuple[ConfigField, ...]:
    """Every setting, in the order of the dataclasses (the form's and the README's order)."""
    schema: list[ConfigField] = []
    hints = get_type_hints(RunConfig)
    for top in fields(RunConfig):
        if SECTION_KEY not in top.metadata:
            schema.append(_config_field(top, hints[top.name], owner=None, title=RUN_SECTION))
            continue
        nested = hints[top.name]
        nested_hints = get_type_hints(nested)
        for inner in fields(nested):
            schema.append(
                _config_field(
                    inner,
                    nested_hints[inner.name],
                    owner=top.name,
                    title=str(top.metadata[SECTION_KEY]),
                )
            )
    return tuple(schema)


def schema_sections() -> tuple[tuple[str, tuple[ConfigField, ...]], ...]:
    """The settings grouped by section title, sections in order of first appearance."""
    grouped: dict[str, list[ConfigField]] = {}
    for entry in config_schema():
        grouped.setdefault(entry.section, []).append(entry)
    return tuple((title, tuple(entries)) for title, entries in grouped.items())


# -- parsing ---------------------------------------------------------------------------------

# A hostile value (a YAML alias bomb, a huge string) must not make the error message huge:
# reprlib stops at a depth and a width, so it never walks the whole value.
_repr = reprlib.Repr()
_repr.maxlevel = 2
_repr.maxstring = 60
_repr.maxother = 60
SHOWN_VALUE_CHARS = 80


def _shown(value: Any) -> str:
    text = _repr.repr(value)
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 1] + "…"


def _fail(where: str, problem: str, *, field: str | None = None) -> InputError:
    return InputError(f"{where}: {problem}", title="Bad run config", field=field)


def _required(entry: ConfigField) -> InputError:
    hint = entry.setting.help
    return _fail(entry.path, f"required; {hint[:1].lower()}{hint[1:]}", field=entry.path)


def _bound(value: Bound) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _read_number(entry: ConfigField, value: Any) -> int | float:
    where = entry.path
    if isinstance(value, str) and entry.kind == "float":
        # YAML reads "2e-4" (no dot) as a string.
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(where, f"expected a number, got {_shown(value)}", field=where)
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(where, f"expected a finite number, got {value!r}", field=where)
    if entry.kind in ("int", "optional_int") and isinstance(value, float):
        if not value.is_integer():
            raise _fail(where, f"expected a whole number, got {value!r}", field=where)
        value = int(value)
    setting = entry.setting
    minimum, maximum = setting.minimum, setting.maximum
    if minimum is not None and (
        value < minimum or (setting.exclusive_minimum and value == minimum)
    ):
        bound = f"> {_bound(minimum)}" if setting.exclusive_minimum else f">= {_bound(minimum)}"
        raise _fail(where, f"must be {bound}, got {_shown(value)}", field=where)
    if maximum is not None and value > maximum:
        raise _fail(where, f"must be <= {_bound(maximum)}, got {_shown(value)}", field=where)
    if entry.kind in ("int", "optional_int"):
        return int(value)
    return float(value)


def _read_value(entry: ConfigField, value: Any) -> Any:
    """The typed value of one setting, or an InputError naming it."""
    where = entry.path
    if value is None and (entry.optional or entry.default == ""):
        # An empty text setting may be written as null (name: null takes the file's name).
        return None
    kind = entry.kind
    if entry.numeric:
        return _read_number(entry, value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise _fail(where, f"expected true or false, got {_shown(value)}", field=where)
        return value
    if kind == "choice":
        if not isinstance(value, str) or value not in entry.setting.choices:
            raise _fail(
                where,
                f"expected one of {', '.join(entry.setting.choices)}, got {_shown(value)}",
                field=where,
            )
        return value
    if kind == "targets":
        if value == ALL_LINEAR:
            return value
        if (
            isinstance(value, list)
            and value
            and all(isinstance(name, str) and name for name in value)
        ):
            return tuple(value)
        raise _fail(
            where,
            f"expected a list of module names (e.g. [q_proj, v_proj]) or {ALL_LINEAR!r}, "
            f"got {_shown(value)}",
            field=where,
        )
    if entry.required and (not isinstance(value, str) or not value.strip()):
        raise _required(entry)
    if not isinstance(value, str):
        expected = "a split name or null" if where.startswith("splits.") else "a string"
        raise _fail(where, f"expected {expected}, got {_shown(value)}", field=where)
    return value


def _mapping(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        field_ = None if where == "config" else where
        raise _fail(where, f"expected a mapping, got {type(raw).__name__}", field=field_)
    return dict(raw)


def _refuse_unknown(values: dict[str, Any], known: Sequence[str], where: str) -> None:
    unknown = sorted(str(key) for key in values if key not in known)
    if unknown:
        path = unknown[0] if where == "config" else f"{where}.{unknown[0]}"
        raise _fail(
            f"{where}.{unknown[0]}",
            f"unknown key (known keys: {', '.join(sorted(known))})",
            field=path,
        )


def _layout() -> tuple[dict[str, ConfigField], dict[str, dict[str, ConfigField]]]:
    """The YAML's shape: top-level settings, and settings by their section's key."""
    top: dict[str, ConfigField] = {}
    nested: dict[str, dict[str, ConfigField]] = {}
    for entry in config_schema():
        head, _, rest = entry.path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = entry
        else:
            top[head] = entry
    return top, nested


def parse_run_config(raw: Any, *, default_name: str = "") -> RunConfig:
    """Validate a parsed YAML document and fill in every default."""
    document = _mapping(raw, "config")
    if isinstance(document.get("qlora"), bool):
        document["qlora"] = {"enabled": document["qlora"]}
    top, nested = _layout()
    _refuse_unknown(document, [*top, *nested], "config")
    sections = {key: _mapping(document.get(key), key) for key in nested}
    for key, values in sections.items():
        _refuse_unknown(values, list(nested[key]), key)

    by_owner: dict[str | None, dict[str, Any]] = {}
    for entry in config_schema():
        head, _, rest = entry.path.partition(".")
        values = sections[head] if rest else document
        name = rest or head
        if name not in values:
            if entry.required:
                raise _required(entry)
            if entry.path == "splits.val" and document.get("splits") is not None:
                # Naming the splits names the validation split too: left out, there is none.
                by_owner.setdefault(entry.owner, {})[entry.attribute] = None
            continue
        by_owner.setdefault(entry.owner, {})[entry.attribute] = _read_value(entry, values[name])

    own = by_owner.pop(None, {})
    own["name"] = own.get("name") or default_name
    train = by_owner.get("train", {})
    if train.get("early_stopping_patience") and own.get("val_split", "val") is None:
        where = "train.early_stopping_patience"
        raise _fail(where, "needs a validation split (splits.val)", field=where)
    return RunConfig(
        **own,
        lora=LoraConfig(**by_owner.get("lora", {})),
        qlora=QloraConfig(**by_owner.get("qlora", {})),
        train=TrainConfig(**train),
    )


def load_run_config(path: Path) -> RunConfig:
    raw = load_yaml_file(path, what="run config", title="Bad run config")
    return parse_run_config(raw, default_name=path.stem)


def run_config_from_json(payload: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig from `RunConfig.as_json()` output (run.json)."""
    data = dict(payload)
    train_split = data.pop("train_split", "train")
    val_split = data.pop("val_split", None)
    data["splits"] = {"train": train_split, "val": val_split}
    return parse_run_config(data)


# -- the README's reference, generated -----------------------------------------------------

README_START = "<!-- run-config-reference:start (python -m core.runs.config --update README.md) -->"
README_END = "<!-- run-config-reference:end -->"


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if value != "" else '""'


def _readable(value: Bound) -> str:
    """A bound for people: 1,000,000,000 rather than 1000000000."""
    return f"{int(value):,}" if float(value).is_integer() else str(value)


def _allowed(entry: ConfigField) -> str:
    setting = entry.setting
    if entry.kind == "bool":
        text = "true, false"
    elif entry.kind == "choice":
        text = ", ".join(setting.choices)
    elif entry.kind == "targets":
        text = f"{ALL_LINEAR} or a list of module names"
    elif entry.numeric:
        whole = "whole number" if entry.kind in ("int", "optional_int") else "number"
        assert setting.minimum is not None and setting.maximum is not None
        low = ">" if setting.exclusive_minimum else "≥"
        text = f"{whole} {low} {_readable(setting.minimum)}, ≤ {_readable(setting.maximum)}"
    else:
        text = "text"
    return text + (", or null" if entry.optional else "")


def config_reference_markdown() -> str:
    """The README's run-config reference: one table per section, straight from the schema."""
    lines: list[str] = []
    for title, entries in schema_sections():
        if lines:
            lines.append("")
        lines += [f"**{title}**", "", "| key | default | allowed | meaning |", "|---|---|---|---|"]
        for entry in entries:
            if entry.required:
                default = "required"
            else:
                value = entry.default
                shown = _yaml_scalar(value) if not isinstance(value, tuple) else str(list(value))
                default = f"`{shown}`"
            meaning = entry.setting.help.replace("|", "\\|")
            lines.append(f"| `{entry.path}` | {default} | {_allowed(entry)} | {meaning} |")
    return "\n".join(lines) + "\n"


def replace_reference(readme: str, block: str) -> str:
    """`readme` with the text between the reference markers replaced by `block`."""
    start = readme.find(README_START)
    end = readme.find(README_END)
    if start < 0 or end < start:
        raise InputError(f"the README has no {README_START} … {README_END} markers")
    head = readme[: start + len(README_START)]
    return f"{head}\n{block}{readme[end:]}"


def reference_in(readme: str) -> str:
    """The text between the reference markers (what `replace_reference` wrote)."""
    start = readme.find(README_START)
    end = readme.find(README_END)
    if start < 0 or end < start:
        raise InputError(f"the README has no {README_START} … {README_END} markers")
    return readme[start + len(README_START) : end].removeprefix("\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.runs.config", description="The run-config reference, from the schema."
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--markdown", action="store_true", help="print the reference tables")
    action.add_argument("--update", type=Path, metavar="README", help="rewrite its reference")
    args = parser.parse_args(argv)
    block = config_reference_markdown()
    if args.markdown:
        sys.stdout.write(block)
        return 0
    readme: Path = args.update
    readme.write_text(replace_reference(readme.read_text(encoding="utf-8"), block), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
