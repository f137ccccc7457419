"""How much GPU memory a LoRA/QLoRA run will need, before any weight is loaded.

The estimate models what *our* trainer does (core.training.trainer), not a generic recipe:
peft adapters kept in fp32, autocast in the compute dtype, `prepare_model_for_kbit_training`
under QLoRA (which upcasts every non-4-bit parameter to fp32), and a loss that runs the LM
head only on loss-bearing positions, in chunks of `LOSS_CHUNK_TOKENS`.

The activation and logits formulas (in `layer_activation_bytes`, `activation_bytes` and
`logit_bytes`) were checked by tracking every tensor alive during one forward/backward step
of small Llama models under peft + sdpa + autocast (CPU, bf16); the CUDA-only difference
(the fused dropout keeps a 1-byte mask where the CPU keeps a full-width one) is applied
analytically. Per token and per decoder layer the saved activations matched to within 2%,
and the logits to within 7% (the formula being the larger). The parts are summed although
the loss's peak and the layers' backward peak come one after the other, so the total errs
high by at most one layer's activations and backward working set.

Pure: the model comes in as its config and parameter count, free memory through an
injectable probe, so every number is testable without a GPU.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.runs.config import ALL_LINEAR, RunConfig
from store.errors import InputError

if TYPE_CHECKING:
    from core.gpu import GpuSnapshot

GIB = 1024**3
CUDA_CONTEXT_BYTES = GIB // 2
FRAGMENTATION = 0.10
# Must equal core.training.trainer.LOSS_CHUNK_TOKENS (a test checks); not imported from
# there because that module imports torch at load time.
LOSS_CHUNK_TOKENS = 8192
FP32 = 4
# bitsandbytes quantizes in blocks of 64 weights, each with an fp32 absmax; double
# quantization stores those absmax as 8 bits, with an fp32 constant per 256 blocks.
NF4_BLOCK = 64
NF4_BYTES = 0.5
NF4_CONSTANTS = FP32 / NF4_BLOCK
NF4_DOUBLE_QUANT_CONSTANTS = 1 / NF4_BLOCK + FP32 / (NF4_BLOCK * 256)
# One layer's backward working set per token, in compute-dtype elements: the gradients of
# the MLP intermediate (3 tensors of `intermediate`) and of the hidden state (~6 of hidden).
BACKWARD_INTERMEDIATE_COPIES = 3
BACKWARD_HIDDEN_COPIES = 6
# Forward/backward transients of one loss chunk per vocabulary entry, beyond the kept fp32
# log-probabilities: the compute-dtype logits, their fp32 copy and the fp32 gradient.
LOGIT_CHUNK_BYTES = 8

GpuProbe = Callable[[], "GpuSnapshot"]


@dataclass(frozen=True, slots=True)
class ModelShape:
    """The sizes of a decoder-only transformer that memory depends on."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied_embeddings: bool

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        """Read a transformers config (the text part of a multimodal one)."""
        text = config
        if getattr(text, "hidden_size", None) is None:
            text = getattr(config, "text_config", None) or config
        hidden = _int_attr(text, "hidden_size", "n_embd", "d_model")
        layers = _int_attr(text, "num_hidden_layers", "n_layer", "num_layers")
        heads = _int_attr(text, "num_attention_heads", "n_head")
        vocab = _int_attr(text, "vocab_size")
        if hidden is None or layers is None or heads is None or vocab is None:
            model_type = getattr(config, "model_type", "unknown")
            raise InputError(
                f"base_model: cannot estimate memory for model type {model_type!r}; its "
                "config has no hidden_size / num_hidden_layers / num_attention_heads / "
                "vocab_size",
                title="VRAM estimate",
            )
        kv_heads = _int_attr(text, "num_key_value_heads") or heads
        head_dim = _int_attr(text, "head_dim") or hidden // heads
        intermediate = _int_attr(text, "intermediate_size", "n_inner") or 4 * hidden
        tied = getattr(text, "tie_word_embeddings", None)
        if tied is None:
            tied = getattr(config, "tie_word_embeddings", False)
        return cls(
            hidden=hidden,
            layers=layers,
            heads=heads,
            kv_heads=kv_heads,
            head_dim=head_dim,
            intermediate=intermediate,
            vocab=vocab,
            tied_embeddings=bool(tied),
        )

    def linear_shape(self, name: str) -> tuple[int, int] | None:
        """(in_features, out_features) of a decoder layer's linear module, by its name.

        Llama, Mistral, Qwen and Gemma names, plus Phi-3's fused qkv_proj / gate_up_proj;
        None for names whose shape the config does not give.
        """
        h, i = self.hidden, self.intermediate
        shapes = {
            "q_proj": (h, self.q_dim),
            "k_proj": (h, self.kv_dim),
            "v_proj": (h, self.kv_dim),
            "o_proj": (self.q_dim, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
            "qkv_proj": (h, self.q_dim + 2 * self.kv_dim),
            "gate_up_proj": (h, 2 * i),
        }
        return shapes.get(name)


@dataclass(frozen=True, slots=True)
class VramEstimate:
    """Bytes of GPU memory one training step needs at its peak, by what holds them."""

    weights: int
    """The frozen base model (4-bit blocks plus fp32 rest under QLoRA)."""
    lora_params: int
    """A count, not bytes: the adapter's trainable parameters."""
    lora_weights: int
    optimizer: int
    """AdamW's two fp32 moments plus the fp32 gradients of the adapter."""
    activations: int
    logits: int
    overhead: int
    """CUDA context plus allocator fragmentation."""
    total: int
    free_gpu: int | None
    gpu_total: int | None
    fits: bool | None
    notes: list[str]

    @property
    def headroom(self) -> int | None:
        return None if self.free_gpu is None else self.free_gpu - self.total


def compute_bytes(run: RunConfig) -> int:
    """Bytes per element of the compute dtype; `auto` trains in bf16 (or fp16) on a GPU."""
    return FP32 if run.train.precision == "fp32" else 2


def target_names(run: RunConfig, linear_modules: Iterable[str]) -> tuple[str, ...]:
    """The module names LoRA wraps: `all-linear` is every linear layer but the LM head."""
    target = run.lora.target_modules
    if target == ALL_LINEAR:
        return tuple(name for name in linear_modules if name != "lm_head")
    return tuple(target)


def count_lora_params(shape: ModelShape, targets: Iterable[str], r: int) -> tuple[int, list[str]]:
    """r·(in + out) per targeted linear layer in every decoder layer; and the unknown names."""
    total = 0
    unknown: list[str] = []
    for name in targets:
        size = shape.linear_shape(name)
        if size is None:
            unknown.append(name)
            continue
        fan_in, fan_out = size
        total += r * (fan_in + fan_out) * shape.layers
    return total, unknown


def weight_bytes(shape: ModelShape, parameters: int, run: RunConfig) -> int:
    """Frozen base weights: every parameter in the compute dtype, or under QLoRA the decoder
    layers' linear weights as 4-bit NF4 (0.5 byte + block constants) and everything else
    (embeddings, LM head, norms) in fp32, as `prepare_model_for_kbit_training` upcasts them.
    """
    if not run.qlora.enabled:
        return parameters * compute_bytes(run)
    embeddings = shape.vocab * shape.hidden * (1 if shape.tied_embeddings else 2)
    norms = (2 * shape.layers + 1) * shape.hidden
    quantized = max(0, parameters - embeddings - norms)
    constants = NF4_DOUBLE_QUANT_CONSTANTS if run.qlora.double_quant else NF4_CONSTANTS
    return math.ceil(quantized * (NF4_BYTES + constants)) + (parameters - quantized) * FP32


def attention_is_masked(run: RunConfig, attention: str) -> bool:
    """Whether sdpa gets a 4D mask: packed rows (a block-diagonal mask) or padded batches.

    Flash-attention 2 handles both through position ids and needs no mask.
    """
    if attention == "flash_attention_2":
        return False
    return run.train.packing or run.train.batch_size > 1


def layer_activation_bytes(
    shape: ModelShape, run: RunConfig, targets: Iterable[str], *, attention: str = "sdpa"
) -> int:
    """Bytes one decoder layer keeps for backward, per token (without gradient checkpointing).

    With b = compute-dtype bytes, h/i = hidden/intermediate size, q/kv = query and key-value
    widths (heads × head_dim), n = attention heads:

        b·(2q + 2kv + 3i)        attention q and output, k and v; MLP gate, SiLU(gate), up
      + 4·n                      attention log-sum-exp (fp32)
      + 8·h                      the two RMSNorms' fp32 copies of their input
      + Σ_targets (in·(b + m) + b·r)   each LoRA module's compute-dtype copy of its input,
                                 its dropout mask (m = 1 byte when dropout > 0, else 0) and
                                 its rank-r intermediate

    Frozen base linears keep nothing: autograd saves a matmul's input only for a weight that
    needs a gradient. Under a masked sdpa, k and v are saved repeated to q's width.
    """
    b = compute_bytes(run)
    kv_saved = shape.q_dim if attention_is_masked(run, attention) else shape.kv_dim
    per_token = b * (2 * shape.q_dim + 2 * kv_saved + 3 * shape.intermediate)
    per_token += FP32 * shape.heads + 2 * FP32 * shape.hidden
    dropout_mask = 1 if run.lora.dropout > 0 else 0
    for name in targets:
        size = shape.linear_shape(name)
        if size is not None:
            per_token += size[0] * (b + dropout_mask) + b * run.lora.r
    return per_token


def activation_bytes(
    shape: ModelShape,
    run: RunConfig,
    targets: Iterable[str],
    *,
    attention: str = "sdpa",
) -> int:
    """Activations at the start of backward, for one micro-batch of N = batch_size ×
    max_seq_len tokens (every row assumed full: packed rows are, padded ones at worst).

    Without gradient checkpointing:  N·(L·A + W)
    With gradient checkpointing:     N·(L·r·h + A + W)   (each layer keeps only its input
                                     hidden state; the layer being recomputed holds A)

    A is `layer_activation_bytes`; W = b·(3i + 6h) is one layer's backward working set; r is
    the residual stream's bytes (fp32 under QLoRA, whose norms and embeddings are fp32).
    A masked sdpa adds, per layer kept, the mask converted to the compute dtype
    (batch × T² × b), plus the boolean mask once (batch × T²).
    """
    train = run.train
    targets = tuple(targets)
    b = compute_bytes(run)
    tokens = train.batch_size * train.max_seq_len
    per_layer = layer_activation_bytes(shape, run, targets, attention=attention)
    working = b * (
        BACKWARD_INTERMEDIATE_COPIES * shape.intermediate + BACKWARD_HIDDEN_COPIES * shape.hidden
    )
    residual = FP32 if run.qlora.enabled else b
    masks_kept = 0
    if train.gradient_checkpointing:
        total = tokens * (shape.layers * residual * shape.hidden + per_layer + working)
        masks_kept = 1
    else:
        total = tokens * (shape.layers * per_layer + working)
        masks_kept = shape.layers
    if attention_is_masked(run, attention):
        mask = train.batch_size * train.max_seq_len**2
        total += mask + masks_kept * mask * b
    return total


def logit_bytes(shape: ModelShape, run: RunConfig, *, loss_fraction: float = 1.0) -> int:
    """The loss: fp32 log-probabilities of every loss-bearing token stay alive until
    backward (chunking bounds only the transients), plus one chunk's transients.

        4·V·N_loss + 8·V·min(N_loss, 8192)        N_loss = loss_fraction × batch × T

    Under QLoRA the fp32 LM head is cast to the compute dtype for each chunk and that copy
    is kept for backward: + ceil(N_loss / 8192)·V·h·b.
    """
    tokens = run.train.batch_size * run.train.max_seq_len
    loss_tokens = max(1, math.ceil(tokens * loss_fraction))
    chunk = min(loss_tokens, LOSS_CHUNK_TOKENS)
    total = FP32 * shape.vocab * loss_tokens + LOGIT_CHUNK_BYTES * shape.vocab * chunk
    if run.qlora.enabled:
        chunks = math.ceil(loss_tokens / LOSS_CHUNK_TOKENS)
        total += chunks * shape.vocab * shape.hidden * compute_bytes(run)
    return total


def default_gpu_probe() -> GpuSnapshot:
    """core.gpu's device sample, imported on first use (NVML loads only when asked)."""
    from core.gpu import probe_devices

    return probe_devices()


def training_device_index() -> int | None:
    """The NVML index of the GPU the trainer uses (cuda:0 after CUDA_VISIBLE_DEVICES).

    None when CUDA_VISIBLE_DEVICES names it by UUID, which NVML indices cannot match here.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or not visible.strip():
        return 0
    first = visible.split(",")[0].strip()
    return int(first) if first.isdigit() else None


def gpu_memory(probe: GpuProbe) -> tuple[int | None, int | None, str | None]:
    """(free, total, note) of the training GPU; the note says why memory is unknown."""
    try:
        snapshot = probe()
    except Exception as error:  # noqa: BLE001 - an estimate without a GPU is still useful
        return None, None, f"no NVIDIA GPU: estimate only (GPU probe failed: {error})"
    if snapshot.unavailable is not None:
        reason = snapshot.unavailable.removeprefix("no NVIDIA GPU: ")
        return None, None, f"no NVIDIA GPU: estimate only ({reason})"
    index = training_device_index()
    device = next((d for d in snapshot.devices if d.index == index), None)
    if device is None:
        return None, None, "training GPU not found among NVML devices: estimate only"
    if device.memory_total is None or device.memory_used is None:
        return None, device.memory_total, f"GPU {device.index}: NVML gave no memory figures"
    return max(0, device.memory_total - device.memory_used), device.memory_total, None


def estimate_vram(
    model_config: Any,
    parameters: int,
    linear_modules: tuple[str, ...],
    run: RunConfig,
    *,
    probe: GpuProbe = default_gpu_probe,
    attention: str = "sdpa",
    loss_fraction: float = 1.0,
) -> VramEstimate:
    """Peak GPU memory of one training step of `run` on this model.

    `loss_fraction` is the share of tokens trained on; 1.0 (every token) is the safe bound,
    chat data with long prompts needs less logits memory.
    """
    shape = ModelShape.from_config(model_config)
    targets = target_names(run, linear_modules)
    notes: list[str] = []
    lora_params, unknown = count_lora_params(shape, targets, run.lora.r)
    if unknown:
        notes.append(
            f"LoRA on {', '.join(unknown)} not counted: their shapes are not known for "
            f"model type {getattr(model_config, 'model_type', 'unknown')!r}"
        )
    weights = weight_bytes(shape, parameters, run)
    lora_weights = lora_params * FP32
    optimizer = lora_params * 3 * FP32
    activations = activation_bytes(shape, run, targets, attention=attention)
    logits = logit_bytes(shape, run, loss_fraction=loss_fraction)
    subtotal = weights + lora_weights + optimizer + activations + logits
    overhead = CUDA_CONTEXT_BYTES + math.ceil(subtotal * FRAGMENTATION)
    total = subtotal + overhead

    free, gpu_total, gpu_note = gpu_memory(probe)
    if gpu_note is not None:
        notes.append(gpu_note)
    fits = None if free is None else total <= free
    if fits is False:
        notes.append(_advice(run, activations, logits, total - (free or 0)))
    if loss_fraction >= 1.0:
        notes.append("logits assume every token is trained on (an upper bound for chat data)")
    if run.train.torch_compile:
        notes.append("torch.compile can change activation memory; estimated for eager mode")
    return VramEstimate(
        weights=weights,
        lora_params=lora_params,
        lora_weights=lora_weights,
        optimizer=optimizer,
        activations=activations,
        logits=logits,
        overhead=overhead,
        total=total,
        free_gpu=free,
        gpu_total=gpu_total,
        fits=fits,
        notes=notes,
    )


def _advice(run: RunConfig, activations: int, logits: int, missing: int) -> str:
    """What to change first when the run does not fit, by what is largest."""
    options: list[str] = []
    if activations > logits and not run.train.gradient_checkpointing:
        options.append("train.gradient_checkpointing: true")
    if activations + logits > missing:
        options.append("a smaller train.batch_size or train.max_seq_len")
    if not run.qlora.enabled:
        options.append("qlora.enabled: true")
    suggestion = "; try " + ", or ".join(options) if options else ""
    return f"short by {missing / GIB:.1f} GiB{suggestion}"


@functools.lru_cache(maxsize=8)
def _inspect_cached(path: str, _config_mtime_ns: int) -> tuple[Any, tuple[str, ...], int]:
    from core.runs.validate import inspect_model

    return inspect_model(Path(path))


def estimate_for_run(run: RunConfig, *, probe: GpuProbe = default_gpu_probe) -> VramEstimate:
    """`estimate_vram` for a run's model, read from its folder or the local HF cache.

    The model inspection (config plus a meta-device build) is cached per folder and
    config.json mtime, so re-estimating while a form is edited costs milliseconds.
    """
    import importlib.util

    from core.runs.validate import resolve_model_path

    path, _revision = resolve_model_path(run.base_model, run.revision, allow_download=False)
    config_file = path / "config.json"
    mtime = config_file.stat().st_mtime_ns if config_file.is_file() else 0
    config, linear, parameters = _inspect_cached(str(path), mtime)
    # The trainer picks flash-attention 2 whenever it is installed.
    attention = "flash_attention_2" if importlib.util.find_spec("flash_attn") else "sdpa"
    return estimate_vram(config, parameters, linear, run, probe=probe, attention=attention)


def _int_attr(config: Any, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
