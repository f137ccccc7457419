"""Cost and break-even: what a fine-tune cost to train, what it saves per request, and when
the saving pays the training back, set against prompt caching.

Measured things come from the workspace (a run's wall time, NVML energy and tokens; the two
evals' prompt and output tokens). Every price and rate is an assumption the user sets, with
flags or `[cost]` of the workspace settings; none is built in, so an unset price leaves its
money lines null with the reason, never a made-up figure.

Training FLOPs per token follow the usual accounting for a frozen base with LoRA: the
forward pass costs 2 per parameter; the backward pass costs 2 per frozen parameter (the
activation gradients flow through it, its weights get none) and 4 per LoRA parameter; the
attention scores add 2·n_layer·n_ctx·d_attn forward (Kaplan et al. 2020), tripled for
training. So 4·N_frozen + 6·N_lora + 6·n_layer·n_ctx·d_attn.

No torch here; transformers loads only when a tokenizer folder is named.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.settings import WorkspaceSettings
from core.tokens import EstimatedCounter, TokenCounter, TokenizerCounter, estimate_tokens
from store.errors import InputError, NotFoundError
from store.evals import EvalRecord, EvalRepository
from store.prompts import PromptRepository
from store.runs import RunRecord, RunRepository
from store.workspace import Workspace

Source = Literal["flag", "settings", "default", "unset"]

# The EU AI Act guidelines on general-purpose AI models: whoever modifies a model with more
# than a third of its original training compute becomes its provider; when the original
# compute is unknown, a third of the 1e23 FLOP presumption is used instead.
EU_UNKNOWN_ORIGINAL_THRESHOLD_FLOPS = 3.3e22
EU_MODIFICATION_SHARE = 1 / 3

MILLIJOULES_PER_KWH = 3.6e9
JOULES_PER_KWH = 3.6e6
TOKENS_PER_MILLION = 1e6
SECONDS_PER_HOUR = 3600.0

# Module names PEFT's "all-linear" reaches in a Llama-shaped model: every linear layer of
# the blocks, never the output head.
_LINEAR_SUFFIXES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True, slots=True)
class Assumption:
    """One number ftod did not measure: its value, unit and where it came from."""

    key: str
    value: float | None
    unit: str
    source: Source

    @property
    def is_set(self) -> bool:
        return self.value is not None

    def as_json(self) -> dict[str, Any]:
        return {"value": _finite(self.value), "unit": self.unit, "source": self.source}


# key → (unit, default or None for "no default: unset", upper bound)
_ASSUMPTION_SPECS: dict[str, tuple[str, float | None, float]] = {
    "gpu_hour_usd": ("USD per GPU-hour", None, math.inf),
    "kwh_usd": ("USD per kWh", None, math.inf),
    "input_usd_per_mtok": ("USD per million input tokens", None, math.inf),
    "output_usd_per_mtok": ("USD per million output tokens", None, math.inf),
    "candidate_input_usd_per_mtok": ("USD per million input tokens (fine-tuned)", None, math.inf),
    "candidate_output_usd_per_mtok": (
        "USD per million output tokens (fine-tuned)",
        None,
        math.inf,
    ),
    "cached_input_usd_per_mtok": ("USD per million cached input tokens", None, math.inf),
    "cache_discount": ("share off the input price for cached tokens", None, 1.0),
    # Not a price: a cache that holds the shared prefix serves every request from it unless
    # the user says otherwise, and the value is shown as a default.
    "cache_hit_rate": ("share of requests whose prefix is cached", 1.0, 1.0),
    "requests_per_day": ("requests per day", None, math.inf),
    "gpus": ("GPUs", None, 1e6),
    "original_training_flops": ("FLOPs of the original model's training", None, math.inf),
    "train_tokens": ("training tokens per epoch (estimate)", None, math.inf),
    "epochs": ("epochs (estimate)", None, 1e6),
    "throughput_tokens_per_s": ("training tokens per second (estimate)", None, math.inf),
}

# The settings file names the electricity price as the module docstring of core.settings shows.
_SETTINGS_KEYS = {"kwh_usd": "electricity_usd_per_kwh"}


@dataclass(frozen=True)
class CostAssumptions:
    """Every price and rate the report uses, each with its value and source."""

    values: Mapping[str, Assumption]

    @classmethod
    def resolve(
        cls, settings: WorkspaceSettings, flags: Mapping[str, float | None] | None = None
    ) -> CostAssumptions:
        """A flag wins over `[cost]` in the settings, which wins over the (rare) default."""
        given = dict(flags or {})
        unknown = sorted(set(given) - set(_ASSUMPTION_SPECS))
        if unknown:
            raise InputError(f"unknown cost assumption(s): {', '.join(unknown)}", field=unknown[0])
        resolved: dict[str, Assumption] = {}
        for key, (unit, default, high) in _ASSUMPTION_SPECS.items():
            setting = _SETTINGS_KEYS.get(key, key)
            flag = given.get(key)
            if flag is not None:
                if not math.isfinite(flag) or not 0 <= flag <= high:
                    raise InputError(
                        f"--{key.replace('_', '-')} must be between 0 and {high:g}, not {flag!r}",
                        field=f"cost.{key}",
                    )
                resolved[key] = Assumption(key, float(flag), unit, "flag")
            elif settings.is_set("cost", setting):
                value = settings.number("cost", setting, 0.0, high=high)
                resolved[key] = Assumption(key, value, unit, "settings")
            elif default is not None:
                resolved[key] = Assumption(key, default, unit, "default")
            else:
                resolved[key] = Assumption(key, None, unit, "unset")
        return cls(values=resolved)

    def with_flag(self, key: str, value: float) -> CostAssumptions:
        """These assumptions with `key` given on the command line."""
        unit, _default, high = _ASSUMPTION_SPECS[key]
        if not math.isfinite(value) or not 0 <= value <= high:
            raise InputError(
                f"--{key.replace('_', '-')} must be between 0 and {high:g}, not {value!r}",
                field=f"cost.{key}",
            )
        return CostAssumptions({**self.values, key: Assumption(key, float(value), unit, "flag")})

    def __getitem__(self, key: str) -> Assumption:
        return self.values[key]

    def value(self, key: str) -> float | None:
        return self.values[key].value

    def as_json(self) -> dict[str, Any]:
        return {key: assumption.as_json() for key, assumption in self.values.items()}


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in USD, or None with the reason (an unset price names itself)."""

    usd: float | None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"usd": _finite(self.usd), "reason": self.reason}


def _money(amount: float | None, needs: Iterable[Assumption], what: str) -> Money:
    missing = [assumption for assumption in needs if not assumption.is_set]
    if missing:
        names = ", ".join(f"--{a.key.replace('_', '-')}" for a in missing)
        return Money(None, f"{what}: price not set ({names} or [cost] in settings)")
    if amount is None:
        return Money(None, f"{what}: the quantity it prices is not known")
    return Money(amount)


# -- energy ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Energy:
    kwh: float | None
    method: Literal["counter", "power_integral", "mixed"] | None
    reason: str
    devices: int

    def as_json(self) -> dict[str, Any]:
        return {
            "kwh": _finite(self.kwh),
            "method": self.method,
            "reason": self.reason,
            "devices": self.devices,
        }


def read_system_samples(path: Path) -> list[dict[str, Any]]:
    """system.jsonl as objects; unreadable lines are skipped (a line cut by a crash)."""
    if not path.is_file():
        return []
    samples: list[dict[str, Any]] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                samples.append(record)
    return samples


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _device_series(samples: Sequence[Mapping[str, Any]]) -> dict[int, list[tuple[float, Any]]]:
    """device index → [(time, device record)], in time order."""
    series: dict[int, list[tuple[float, Any]]] = {}
    for sample in samples:
        taken = _number(sample.get("time"))
        devices = sample.get("devices")
        if taken is None or not isinstance(devices, list):
            continue
        for position, device in enumerate(devices):
            if not isinstance(device, Mapping):
                continue
            index = device.get("index")
            key = index if isinstance(index, int) and not isinstance(index, bool) else position
            series.setdefault(key, []).append((taken, device))
    for points in series.values():
        points.sort(key=lambda point: point[0])
    return series


def _counter_joules(points: Sequence[tuple[float, Any]]) -> float | None:
    """The counter's rise over the run, or None when it is missing or went backwards (a
    driver reload resets it: a difference across the reset would be meaningless)."""
    readings = [
        (taken, value)
        for taken, device in points
        if (value := _number(device.get("energy_mj"))) is not None
    ]
    if len(readings) < 2 or len(readings) < len(points):
        return None
    values = [value for _taken, value in readings]
    if any(later < earlier for earlier, later in itertools.pairwise(values)):
        return None
    return (values[-1] - values[0]) / 1000.0


def _power_joules(points: Sequence[tuple[float, Any]]) -> float | None:
    """Trapezoid rule over the power samples; an interval with a missing reading is left
    out (it counts as nothing rather than as a guess)."""
    total = 0.0
    intervals = 0
    for (start, first), (end, second) in itertools.pairwise(points):
        before = _number(first.get("power_w"))
        after = _number(second.get("power_w"))
        if before is None or after is None or end <= start:
            continue
        total += (before + after) / 2.0 * (end - start)
        intervals += 1
    return total if intervals else None


def energy_from_samples(samples: Sequence[Mapping[str, Any]]) -> Energy:
    """A run's GPU energy from its system.jsonl samples: the driver's total-energy counter
    where every sample of a device has it, else the integral of its power samples."""
    series = _device_series(samples)
    if not series:
        why = next(
            (str(s["unavailable"]) for s in samples if isinstance(s.get("unavailable"), str)),
            "no GPU samples were recorded",
        )
        return Energy(None, None, f"no NVML energy: {why}", 0)
    joules = 0.0
    methods: set[str] = set()
    for index, points in sorted(series.items()):
        counted = _counter_joules(points)
        if counted is not None:
            joules += counted
            methods.add("counter")
            continue
        integrated = _power_joules(points)
        if integrated is None:
            return Energy(
                None,
                None,
                f"GPU {index} has neither a usable energy counter nor two power readings",
                len(series),
            )
        joules += integrated
        methods.add("power_integral")
    method: Literal["counter", "power_integral", "mixed"] = (
        "mixed" if len(methods) > 1 else "counter" if "counter" in methods else "power_integral"
    )
    reasons = {
        "counter": "difference of the driver's total-energy counter",
        "power_integral": "integral of the power samples (no usable energy counter)",
        "mixed": "energy counter where the GPU has one, power integral elsewhere",
    }
    return Energy(joules / JOULES_PER_KWH, method, reasons[method], len(series))


# -- parameters and FLOPs --------------------------------------------------------------


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name → shape from a safetensors header, without reading any weights."""
    from core.model_files import check_safetensors

    check_safetensors(path)
    with path.open("rb") as handle:
        header_size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(header_size))
    return {
        name: [int(size) for size in entry.get("shape", [])]
        for name, entry in header.items()
        if name != "__metadata__" and isinstance(entry, dict)
    }


def model_shapes(folder: Path) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for path in sorted(folder.glob("*.safetensors")):
        shapes.update(safetensors_shapes(path))
    return shapes


def _count(shape: Sequence[int]) -> int:
    return math.prod(shape)


def frozen_parameters(shapes: Mapping[str, Sequence[int]]) -> int:
    """Base parameters that cost multiply-adds per token: an untied input embedding is a
    lookup, so it is left out; a tied one is the output head and counts once."""
    untied_head = any(name.endswith("lm_head.weight") for name in shapes)
    return sum(
        _count(shape)
        for name, shape in shapes.items()
        if not (untied_head and name.endswith("embed_tokens.weight"))
    )


def lora_parameters_from_config(
    shapes: Mapping[str, Sequence[int]], rank: int, target_modules: str | Sequence[str]
) -> int:
    """r·(in + out) for every targeted linear weight of the base."""
    targets = _LINEAR_SUFFIXES if target_modules == "all-linear" else tuple(target_modules)
    total = 0
    for name, shape in shapes.items():
        if len(shape) != 2 or not name.endswith(".weight"):
            continue
        module = name.removesuffix(".weight").rsplit(".", 1)[-1]
        if module in targets:
            total += rank * (shape[0] + shape[1])
    return total


@dataclass(frozen=True, slots=True)
class Flops:
    total: float | None
    per_token: float | None
    tokens: int | None
    frozen_parameters: int | None
    lora_parameters: int | None
    attention_per_token: float | None
    lora_source: str | None
    reason: str | None
    eu_threshold: float
    eu_threshold_source: str

    @property
    def eu_share(self) -> float | None:
        return None if self.total is None else self.total / self.eu_threshold

    def as_json(self) -> dict[str, Any]:
        share = self.eu_share
        return {
            "total": _finite(self.total),
            "per_token": _finite(self.per_token),
            "tokens_seen": self.tokens,
            "frozen_parameters": self.frozen_parameters,
            "lora_parameters": self.lora_parameters,
            "attention_per_token": _finite(self.attention_per_token),
            "lora_parameters_from": self.lora_source,
            "reason": self.reason,
            "eu_ai_act": {
                "threshold_flops": self.eu_threshold,
                "threshold_from": self.eu_threshold_source,
                "share_of_threshold": _finite(share),
                "status": None if share is None else ("above" if share > 1 else "below"),
            },
        }


def flops_per_token(
    frozen: int, lora: int, n_layer: int, n_ctx: int, d_attn: int
) -> tuple[float, float]:
    """(training FLOPs per token, of which attention)."""
    attention = 6.0 * n_layer * n_ctx * d_attn
    return 4.0 * frozen + 6.0 * lora + attention, attention


def _eu_threshold(assumptions: CostAssumptions) -> tuple[float, str]:
    original = assumptions["original_training_flops"]
    if original.value:
        return (
            original.value * EU_MODIFICATION_SHARE,
            f"a third of the original ({original.source})",
        )
    return EU_UNKNOWN_ORIGINAL_THRESHOLD_FLOPS, "original compute unknown: 3.3e22"


def _run_folder(workspace: Workspace, run: RunRecord) -> Path:
    folder = Path(run.run_dir)
    return folder if folder.is_absolute() else workspace.root.parent / folder


def _base_folder(workspace: Workspace, run: RunRecord) -> Path | None:
    named = run.lineage.get("base_model_path") or run.base_model
    if not isinstance(named, str):
        return None
    for candidate in (Path(named), workspace.root.parent / named):
        if candidate.is_dir():
            return candidate
    return None


def run_flops(
    workspace: Workspace, run: RunRecord, tokens: int | None, assumptions: CostAssumptions
) -> Flops:
    threshold, threshold_source = _eu_threshold(assumptions)

    def unknown(reason: str) -> Flops:
        return Flops(
            None, None, tokens, None, None, None, None, reason, threshold, threshold_source
        )

    base = _base_folder(workspace, run)
    if base is None:
        return unknown(f"base model folder {run.base_model!r} is not on this machine")
    config_path = base / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return unknown(f"{config_path}: cannot read the model config ({error})")
    shapes = model_shapes(base)
    if not shapes:
        return unknown(f"{base}: no safetensors weights to count parameters from")
    frozen = frozen_parameters(shapes)
    adapter = _run_folder(workspace, run) / "adapter" / "adapter_model.safetensors"
    lora_config = run.config.get("lora") if isinstance(run.config.get("lora"), dict) else {}
    if adapter.is_file():
        lora = sum(_count(shape) for shape in safetensors_shapes(adapter).values())
        lora_source = "the run's adapter weights"
    elif isinstance(lora_config, dict) and isinstance(lora_config.get("r"), int):
        target = lora_config.get("target_modules", "all-linear")
        lora = lora_parameters_from_config(shapes, int(lora_config["r"]), target)
        lora_source = f"LoRA config (r={lora_config['r']}, target_modules={target})"
    else:
        return unknown("the run has neither an adapter nor a LoRA rank to count from")
    n_layer = config.get("num_hidden_layers")
    heads = config.get("num_attention_heads")
    hidden = config.get("hidden_size")
    head_dim = config.get("head_dim") or (hidden // heads if hidden and heads else None)
    train = run.config.get("train") if isinstance(run.config.get("train"), dict) else {}
    n_ctx = train.get("max_seq_len") if isinstance(train, dict) else None
    if not (
        isinstance(n_layer, int)
        and isinstance(heads, int)
        and isinstance(head_dim, int)
        and isinstance(n_ctx, int)
    ):
        return unknown("the model config or run config lacks layers, heads or max_seq_len")
    per_token, attention = flops_per_token(frozen, lora, n_layer, n_ctx, heads * head_dim)
    total = None if tokens is None else per_token * tokens
    return Flops(
        total,
        per_token,
        tokens,
        frozen,
        lora,
        attention,
        lora_source,
        None if tokens is not None else "the run logged no token counts",
        threshold,
        threshold_source,
    )


# -- the report ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Training:
    run_id: str | None
    basis: str
    wall_s: float | None
    gpus: float | None
    gpus_source: str
    gpu_hours: float | None
    gpu_hours_reason: str | None
    energy: Energy | None
    gpu_cost: Money
    energy_cost: Money
    flops: Flops | None

    @property
    def total_cost(self) -> Money:
        parts = [money for money in (self.gpu_cost, self.energy_cost) if money.usd is not None]
        if not parts:
            reasons = [m.reason for m in (self.gpu_cost, self.energy_cost) if m.reason]
            return Money(None, "; ".join(reasons) or "no training cost could be priced")
        left_out = [m.reason for m in (self.gpu_cost, self.energy_cost) if m.usd is None]
        return Money(
            sum(money.usd or 0.0 for money in parts),
            f"without {'; '.join(r for r in left_out if r)}" if left_out else None,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "basis": self.basis,
            "wall_s": _finite(self.wall_s),
            "gpus": _finite(self.gpus),
            "gpus_from": self.gpus_source,
            "gpu_hours": _finite(self.gpu_hours),
            "gpu_hours_reason": self.gpu_hours_reason,
            "energy": None if self.energy is None else self.energy.as_json(),
            "gpu_cost": self.gpu_cost.as_json(),
            "energy_cost": self.energy_cost.as_json(),
            "total_cost": self.total_cost.as_json(),
            "flops": None if self.flops is None else self.flops.as_json(),
        }


@dataclass(frozen=True, slots=True)
class PromptSide:
    """One eval's per-request tokens and what they cost a day."""

    eval_label: str
    prompt: str | None
    input_tokens: float
    output_tokens: float
    prefix_tokens: float
    counted_with: str

    def as_json(self) -> dict[str, Any]:
        return {
            "eval": self.eval_label,
            "prompt": self.prompt,
            "input_tokens_per_request": _finite(self.input_tokens),
            "output_tokens_per_request": _finite(self.output_tokens),
            "shared_prefix_tokens": _finite(self.prefix_tokens),
            "counted_with": self.counted_with,
        }


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    input_tokens: float | None
    cached_tokens: float | None
    output_tokens: float | None
    per_day: Money
    one_off: Money

    def as_json(self) -> dict[str, Any]:
        return {
            "option": self.name,
            "input_tokens_per_request": _finite(self.input_tokens),
            "cached_tokens_per_request": _finite(self.cached_tokens),
            "output_tokens_per_request": _finite(self.output_tokens),
            "per_day": self.per_day.as_json(),
            "one_off": self.one_off.as_json(),
        }


@dataclass(frozen=True, slots=True)
class BreakEven:
    against: str
    saving_per_day: Money
    days: float | None
    reason: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "saving_per_day": self.saving_per_day.as_json(),
            "days": _finite(self.days),
            "reason": self.reason,
        }


OPTION_LONG_PROMPT = "long few-shot prompt on the large model"
OPTION_FINE_TUNED = "short prompt on the fine-tuned small model"
OPTION_CACHING = "prompt caching"


@dataclass(frozen=True)
class CostReport:
    assumptions: CostAssumptions
    training: Training | None
    training_reason: str | None
    baseline: PromptSide | None
    candidate: PromptSide | None
    inference_reason: str | None
    table: tuple[Option, ...] = ()
    break_even: tuple[BreakEven, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_json(self) -> dict[str, Any]:
        return {
            "assumptions": self.assumptions.as_json(),
            "training": None if self.training is None else self.training.as_json(),
            "training_reason": self.training_reason,
            "inference": {
                "baseline": None if self.baseline is None else self.baseline.as_json(),
                "candidate": None if self.candidate is None else self.candidate.as_json(),
                "reason": self.inference_reason,
            },
            "break_even": [item.as_json() for item in self.break_even],
            "break_even_reached": self.break_even_reached,
            "table": [option.as_json() for option in self.table],
            "notes": list(self.notes),
        }

    @property
    def break_even_reached(self) -> bool | None:
        """Whether the fine-tune pays for itself against every alternative: False when a
        known daily saving never repays it, None when a price or a side is unknown."""
        if not self.break_even:
            return None
        if any(
            item.days is None and item.saving_per_day.usd is not None for item in self.break_even
        ):
            return False
        if all(item.days is not None for item in self.break_even):
            return True
        return None


def break_even_days(one_off_usd: float, saving_per_day_usd: float) -> float | None:
    """Days until a daily saving repays a one-off cost; None when it never does."""
    if saving_per_day_usd <= 0:
        return None
    return one_off_usd / saving_per_day_usd


def _wall_seconds(run: RunRecord) -> float | None:
    start = run.started_at
    end = run.ended_at if run.ended_at is not None else run.heartbeat
    if start is None or end is None or end < start:
        return None
    return end - start


def _tokens_seen(runs: RunRepository, run_id: str) -> int | None:
    tokens = [int(value) for value in runs.metrics(run_id, "train")["tokens"] if value is not None]
    return sum(tokens) if tokens else None


def _measured_training(
    workspace: Workspace, runs: RunRepository, run: RunRecord, assumptions: CostAssumptions
) -> Training:
    wall = _wall_seconds(run)
    samples = read_system_samples(_run_folder(workspace, run) / "system.jsonl")
    energy = energy_from_samples(samples)
    gpus_assumption = assumptions["gpus"]
    gpus: float | None
    gpus_source: str
    gpu_reason: str | None = None
    if gpus_assumption.is_set:
        gpus, gpus_source = gpus_assumption.value, gpus_assumption.source
    elif energy.devices:
        gpus, gpus_source = float(energy.devices), "system.jsonl"
    else:
        gpus, gpus_source = None, "system.jsonl"
        gpu_reason = f"the run was recorded without a GPU ({energy.reason}); --gpus N prices it"
    gpu_hours = None
    if wall is None:
        gpu_reason = "the run has no start and end time"
    elif gpus is not None:
        gpu_hours = wall * gpus / SECONDS_PER_HOUR
    gpu_rate = assumptions["gpu_hour_usd"]
    kwh_rate = assumptions["kwh_usd"]
    gpu_cost = _money(
        None if gpu_hours is None or gpu_rate.value is None else gpu_hours * gpu_rate.value,
        [gpu_rate],
        "GPU time",
    )
    if energy.kwh is None:
        energy_cost = Money(None, f"electricity: {energy.reason}")
    else:
        energy_cost = _money(
            None if kwh_rate.value is None else energy.kwh * kwh_rate.value,
            [kwh_rate],
            "electricity",
        )
    return Training(
        run_id=run.run_id,
        basis=f"recorded run ({run.state})",
        wall_s=wall,
        gpus=gpus,
        gpus_source=gpus_source,
        gpu_hours=gpu_hours,
        gpu_hours_reason=gpu_reason,
        energy=energy,
        gpu_cost=gpu_cost,
        energy_cost=energy_cost,
        flops=run_flops(workspace, run, _tokens_seen(runs, run.run_id), assumptions),
    )


def _estimated_training(
    runs: RunRepository, assumptions: CostAssumptions
) -> tuple[Training | None, str | None]:
    """Before a run: tokens × epochs over a throughput (measured by earlier runs, or set)."""
    tokens = assumptions["train_tokens"]
    epochs = assumptions["epochs"]
    throughput: float | None = assumptions.value("throughput_tokens_per_s")
    source: str = assumptions["throughput_tokens_per_s"].source
    if throughput is None:
        measured = [r.tokens_per_s for r in runs.list_runs() if r.tokens_per_s]
        if measured:
            throughput, source = float(measured[0]), "the newest run's tokens/s"
    if tokens.value is None or epochs.value is None or not throughput:
        return None, (
            "no run chosen and no estimate possible: set --train-tokens and --epochs, and a "
            "throughput (--throughput-tokens-per-s, or a run that measured one)"
        )
    wall = tokens.value * epochs.value / throughput
    gpus = assumptions.value("gpus") or 1.0
    gpu_hours = wall * gpus / SECONDS_PER_HOUR
    rate = assumptions["gpu_hour_usd"]
    return (
        Training(
            run_id=None,
            basis=f"estimate: tokens × epochs at {throughput:,.0f} tokens/s ({source})",
            wall_s=wall,
            gpus=gpus,
            gpus_source=assumptions["gpus"].source if assumptions["gpus"].is_set else "default 1",
            gpu_hours=gpu_hours,
            gpu_hours_reason=None,
            energy=None,
            gpu_cost=_money(
                None if rate.value is None else gpu_hours * rate.value, [rate], "GPU time"
            ),
            energy_cost=Money(None, "electricity: no energy is measured before a run"),
            flops=None,
        ),
        None,
    )


def _counter(tokenizer_dir: Path | None) -> TokenCounter:
    return TokenizerCounter(tokenizer_dir) if tokenizer_dir is not None else EstimatedCounter()


def _texts(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(message.get("content") or "") for message in messages]


def _prompt_side(
    evals: EvalRepository, record: EvalRecord, counter: TokenCounter | None
) -> PromptSide:
    """Per-request tokens of one eval: with the tokenizer when one is named, else the counts
    the generator recorded (its own tokenizer and chat template), else estimated."""
    from core.evals.prompts import PromptSpec, input_messages

    outputs = evals.outputs(record.eval_id)
    if not outputs:
        raise InputError(f"eval {record.label!r} has no outputs to count", field="eval")
    spec = None
    if record.prompt:
        try:
            spec = PromptSpec.of(PromptRepository(evals.store).prompt(record.prompt))
        except NotFoundError:
            # An imported eval may name a prompt that was never stored: its recorded
            # input tokens still count, only the cacheable prefix is unknown.
            spec = None
    prefix_messages: list[dict[str, Any]] = []
    if spec is not None:
        prefix_messages = input_messages(spec, [])
    recorded_in = [o.input_tokens for o in outputs]
    recorded_out = [o.output_tokens for o in outputs]
    if counter is None and all(v is not None for v in recorded_in + recorded_out):
        counted_with = "recorded by the generator (the model's tokenizer and chat template)"
        input_tokens = _mean(int(v or 0) for v in recorded_in)
        output_tokens = _mean(int(v or 0) for v in recorded_out)
        prefix = EstimatedCounter().count(prefix_messages, _texts(prefix_messages))[0]
        counted_with += "; shared prefix estimated"
    else:
        active = counter or EstimatedCounter()
        counted_with = active.label
        examples = {row.line: row.messages for row in _examples(evals, record)}
        inputs = []
        for output in outputs:
            messages = examples.get(output.line, [])
            built = input_messages(spec, messages) if spec is not None else messages[:-1]
            inputs.append(active.count(built, _texts(built))[0])
        input_tokens = _mean(inputs)
        output_tokens = _mean(_output_tokens(active, o.output) for o in outputs)
        prefix = active.count(prefix_messages, _texts(prefix_messages))[0] if prefix_messages else 0
    return PromptSide(
        eval_label=record.label,
        prompt=record.prompt,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        prefix_tokens=float(prefix),
        counted_with=counted_with,
    )


def _examples(evals: EvalRepository, record: EvalRecord) -> list[Any]:
    return evals.eval_examples(record.version_id, record.split_id, record.split)


def _output_tokens(counter: TokenCounter, text: str) -> int:
    if isinstance(counter, TokenizerCounter):
        # The loss-bearing count of one assistant turn: its tokens plus the end-of-turn
        # token, which the model generates too.
        return counter.count([{"role": "assistant", "content": text}], [text])[1]
    return estimate_tokens(text)


def _mean(values: Iterable[int]) -> float:
    numbers = list(values)
    return sum(numbers) / len(numbers) if numbers else 0.0


def _daily(
    requests: float | None,
    input_tokens: float,
    cached_tokens: float,
    output_tokens: float,
    input_price: float | None,
    cached_price: float | None,
    output_price: float | None,
) -> float | None:
    if requests is None or input_price is None or output_price is None:
        return None
    if cached_tokens and cached_price is None:
        return None
    uncached = input_tokens - cached_tokens
    per_request = (
        uncached * input_price
        + cached_tokens * (cached_price or 0.0)
        + output_tokens * output_price
    ) / TOKENS_PER_MILLION
    return requests * per_request


def _cached_price(assumptions: CostAssumptions) -> tuple[float | None, list[Assumption]]:
    cached = assumptions["cached_input_usd_per_mtok"]
    if cached.is_set:
        return cached.value, [cached]
    discount = assumptions["cache_discount"]
    price = assumptions["input_usd_per_mtok"]
    if discount.value is not None and price.value is not None:
        return price.value * (1 - discount.value), [price, discount]
    return None, [cached]


def inference_table(
    assumptions: CostAssumptions,
    baseline: PromptSide,
    candidate: PromptSide,
    training_cost: Money,
    requests: Assumption,
) -> tuple[tuple[Option, ...], tuple[BreakEven, ...]]:
    input_price = assumptions["input_usd_per_mtok"]
    output_price = assumptions["output_usd_per_mtok"]
    cand_in = assumptions["candidate_input_usd_per_mtok"]
    cand_out = assumptions["candidate_output_usd_per_mtok"]
    # The fine-tuned model is priced as the large one unless the user says otherwise.
    cand_in = cand_in if cand_in.is_set else input_price
    cand_out = cand_out if cand_out.is_set else output_price
    cached_price, cached_needs = _cached_price(assumptions)
    hit_rate = assumptions.value("cache_hit_rate") or 0.0
    cached_tokens = baseline.prefix_tokens * hit_rate
    price_needs = [requests, input_price, output_price]
    long_daily = _daily(
        requests.value,
        baseline.input_tokens,
        0.0,
        baseline.output_tokens,
        input_price.value,
        None,
        output_price.value,
    )
    tuned_daily = _daily(
        requests.value,
        candidate.input_tokens,
        0.0,
        candidate.output_tokens,
        cand_in.value,
        None,
        cand_out.value,
    )
    cached_daily = _daily(
        requests.value,
        baseline.input_tokens,
        cached_tokens,
        baseline.output_tokens,
        input_price.value,
        cached_price,
        output_price.value,
    )
    no_one_off = Money(0.0)
    table = (
        Option(
            OPTION_LONG_PROMPT,
            baseline.input_tokens,
            0.0,
            baseline.output_tokens,
            _money(long_daily, price_needs, "per day"),
            no_one_off,
        ),
        Option(
            OPTION_FINE_TUNED,
            candidate.input_tokens,
            0.0,
            candidate.output_tokens,
            _money(tuned_daily, [requests, cand_in, cand_out], "per day"),
            training_cost,
        ),
        Option(
            OPTION_CACHING,
            baseline.input_tokens,
            cached_tokens,
            baseline.output_tokens,
            _money(cached_daily, [*price_needs, *cached_needs], "per day"),
            no_one_off,
        ),
    )
    tuned = table[1]
    break_even = tuple(_break_even(other, tuned, training_cost) for other in (table[0], table[2]))
    return table, break_even


def _break_even(other: Option, tuned: Option, training_cost: Money) -> BreakEven:
    if other.per_day.usd is None or tuned.per_day.usd is None:
        reason = other.per_day.reason or tuned.per_day.reason
        return BreakEven(other.name, Money(None, reason), None, reason)
    saving = other.per_day.usd - tuned.per_day.usd
    if training_cost.usd is None:
        return BreakEven(other.name, Money(saving), None, training_cost.reason)
    days = break_even_days(training_cost.usd, saving)
    reason = None if days is not None else "the fine-tuned model saves nothing per day"
    return BreakEven(other.name, Money(saving), days, reason)


def cost_report(
    *,
    workspace: Workspace,
    runs: RunRepository,
    evals: EvalRepository,
    run_id: str | None,
    baseline_eval: str | None,
    candidate_eval: str | None,
    requests_per_day: float | None,
    assumptions: CostAssumptions,
    tokenizer_dir: Path | None = None,
) -> CostReport:
    """Training cost of `run_id` (or an estimate), inference cost of the baseline and
    candidate evals' prompts, the three-way table and the break-even days."""
    if requests_per_day is not None:
        assumptions = assumptions.with_flag("requests_per_day", requests_per_day)
    notes: list[str] = []
    training: Training | None = None
    training_reason: str | None = None
    if run_id is not None:
        training = _measured_training(workspace, runs, runs.run(run_id), assumptions)
    else:
        training, training_reason = _estimated_training(runs, assumptions)
    if training is not None and training.energy is not None and training.energy.kwh is None:
        notes.append(f"No energy figure ({training.energy.reason}); none is put in its place.")
    baseline = candidate = None
    inference_reason: str | None = None
    table: tuple[Option, ...] = ()
    break_even: tuple[BreakEven, ...] = ()
    if baseline_eval is None or candidate_eval is None:
        inference_reason = "name both --baseline and --candidate evals to price inference"
    else:
        counter = _counter(tokenizer_dir) if tokenizer_dir is not None else None
        try:
            baseline = _prompt_side(evals, evals.eval_by_ref(baseline_eval), counter)
            candidate = _prompt_side(evals, evals.eval_by_ref(candidate_eval), counter)
        except NotFoundError as error:
            raise InputError(error.message, title=error.title, field="eval") from error
        training_cost = (
            training.total_cost
            if training is not None
            else Money(None, training_reason or "no training cost")
        )
        if not assumptions["candidate_input_usd_per_mtok"].is_set:
            notes.append(
                "The fine-tuned model is priced as the large one: set "
                "--candidate-input-usd-per-mtok / --candidate-output-usd-per-mtok "
                "for a cheaper or self-hosted model."
            )
        table, break_even = inference_table(
            assumptions, baseline, candidate, training_cost, assumptions["requests_per_day"]
        )
    return CostReport(
        assumptions=assumptions,
        training=training,
        training_reason=training_reason,
        baseline=baseline,
        candidate=candidate,
        inference_reason=inference_reason,
        table=table,
        break_even=break_even,
        notes=tuple(notes),
    )


def _finite(value: float | None) -> float | None:
    """Strict JSON: a NaN or infinity never leaves as a number."""
    if value is None or not math.isfinite(value):
        return None
    return value
