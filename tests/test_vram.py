"""The VRAM estimate: hand-computed sizes for a Llama-3.2-1B shape, and how it reacts."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core.gpu import DeviceSample, GpuSnapshot
from core.runs.config import RunConfig, parse_run_config
from core.runs.vram import (
    GIB,
    LOSS_CHUNK_TOKENS,
    ModelShape,
    VramEstimate,
    count_lora_params,
    estimate_for_run,
    estimate_vram,
)
from store.errors import InputError

LLAMA_LINEAR = ("down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj")
# meta-llama/Llama-3.2-1B: tied embeddings, 1,235,814,400 parameters.
LLAMA_1B_PARAMETERS = 1_235_814_400
LLAMA_1B = SimpleNamespace(
    model_type="llama",
    hidden_size=2048,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=64,
    intermediate_size=8192,
    vocab_size=128256,
    tie_word_embeddings=True,
)


def run_config(**train: Any) -> RunConfig:
    lora = train.pop("lora", {})
    qlora = train.pop("qlora", False)
    return parse_run_config(
        {
            "base_model": "meta-llama/Llama-3.2-1B",
            "dataset": "support@1",
            "lora": {"r": 16, **lora},
            "qlora": qlora,
            "train": train,
        }
    )


def no_gpu() -> GpuSnapshot:
    return GpuSnapshot(time=0.0, unavailable="no NVIDIA GPU: NVIDIA driver not loaded")


def gpu_with(free_gib: float, total_gib: float = 80.0) -> GpuSnapshot:
    total = int(total_gib * GIB)
    device = DeviceSample(index=0, memory_total=total, memory_used=total - int(free_gib * GIB))
    return GpuSnapshot(time=0.0, devices=(device,))


def estimate(run: RunConfig, free_gib: float | None = None, **kwargs: Any) -> VramEstimate:
    return estimate_vram(
        LLAMA_1B,
        LLAMA_1B_PARAMETERS,
        LLAMA_LINEAR,
        run,
        probe=no_gpu if free_gib is None else (lambda: gpu_with(free_gib)),
        **kwargs,
    )


def test_lora_parameters_of_llama_1b_by_hand() -> None:
    # Per layer, r·(in + out): q 16·(2048+2048), k and v 16·(2048+512) each,
    # o 16·(2048+2048), gate and up 16·(2048+8192) each, down 16·(8192+2048):
    # 65,536 + 2·40,960 + 65,536 + 3·163,840 = 704,512; × 16 layers.
    expected = 11_272_192
    assert expected == 704_512 * 16
    shape = ModelShape.from_config(LLAMA_1B)
    assert count_lora_params(shape, LLAMA_LINEAR, 16) == (expected, [])

    result = estimate(run_config())  # all-linear
    assert result.lora_params == expected
    assert result.lora_weights == expected * 4
    assert result.optimizer == expected * 12  # two fp32 AdamW moments + fp32 gradients

    only_qv = estimate(run_config(lora={"target_modules": ["q_proj", "v_proj"]}))
    assert only_qv.lora_params == 16 * (4096 + 2560) * 16


def test_all_linear_leaves_out_the_lm_head() -> None:
    with_head = estimate_vram(
        LLAMA_1B, LLAMA_1B_PARAMETERS, (*LLAMA_LINEAR, "lm_head"), run_config(), probe=no_gpu
    )
    assert with_head.lora_params == 11_272_192
    assert with_head.notes == estimate(run_config()).notes


def test_weights_bf16_fp32_and_qlora() -> None:
    assert estimate(run_config()).weights == LLAMA_1B_PARAMETERS * 2  # auto trains in bf16
    assert estimate(run_config(precision="fp16")).weights == LLAMA_1B_PARAMETERS * 2
    assert estimate(run_config(precision="fp32")).weights == LLAMA_1B_PARAMETERS * 4

    # QLoRA: the 16 layers' linear weights (60,817,408 each) as NF4 with double-quantized
    # constants: 0.5 + 1/64 + 4/(64·256) bytes each; the tied embedding and the 33 norms
    # stay unquantized and are upcast to fp32 by prepare_model_for_kbit_training.
    quantized = 973_078_528
    assert quantized == 16 * (2 * 2048 * 2048 + 2 * 2048 * 512 + 3 * 2048 * 8192)
    nf4 = 486_539_264 + 15_204_352 + 237_568
    rest = (128256 * 2048 + 33 * 2048) * 4
    assert estimate(run_config(qlora=True)).weights == nf4 + rest == 1_552_924_672

    single_quant = estimate(run_config(qlora={"enabled": True, "double_quant": False}))
    assert single_quant.weights == quantized // 2 + quantized // 16 + rest


def test_gradient_checkpointing_cuts_activations() -> None:
    plain = estimate(run_config(batch_size=4, max_seq_len=2048))
    checkpointed = estimate(run_config(batch_size=4, max_seq_len=2048, gradient_checkpointing=True))
    assert checkpointed.activations < plain.activations / 4
    assert checkpointed.logits == plain.logits  # the loss is outside the checkpointed layers
    assert checkpointed.total < plain.total


def test_longer_sequences_and_bigger_batches_need_more() -> None:
    short = estimate(run_config(batch_size=1, max_seq_len=1024))
    long = estimate(run_config(batch_size=1, max_seq_len=4096))
    wide = estimate(run_config(batch_size=4, max_seq_len=1024))
    assert long.activations > 4 * short.activations * 0.99
    assert long.logits > short.logits
    assert wide.activations > short.activations
    assert long.weights == short.weights and long.lora_params == short.lora_params


def test_logits_keep_every_loss_token_and_one_chunk() -> None:
    # 4 × 2048 = 8192 tokens, every one trained on: fp32 log-probabilities of all of them
    # (kept for backward) + one 8192-token chunk's transients (8 bytes per entry).
    result = estimate(run_config(batch_size=4, max_seq_len=2048))
    assert result.logits == 4 * 128256 * 8192 + 8 * 128256 * 8192
    half = estimate(run_config(batch_size=4, max_seq_len=2048), loss_fraction=0.5)
    assert half.logits == 4 * 128256 * 4096 + 8 * 128256 * 4096
    assert not any("every token" in note for note in half.notes)


def test_total_is_the_sum_plus_context_and_fragmentation() -> None:
    result = estimate(run_config())
    parts = result.weights + result.lora_weights + result.optimizer
    parts += result.activations + result.logits
    assert result.overhead == GIB // 2 + -(-parts // 10)
    assert result.total == parts + result.overhead


def test_fits_against_the_free_memory_of_the_gpu() -> None:
    run = run_config(batch_size=1, max_seq_len=1024, gradient_checkpointing=True)
    roomy = estimate(run, free_gib=70)
    assert roomy.fits is True
    assert roomy.free_gpu == 70 * GIB and roomy.gpu_total == 80 * GIB
    assert roomy.headroom is not None and roomy.headroom > 0

    tight = estimate(run, free_gib=roomy.total / GIB / 2)
    assert tight.fits is False
    advice = [note for note in tight.notes if note.startswith("short by")]
    assert advice and "qlora.enabled: true" in advice[0]


def test_without_a_gpu_it_is_an_estimate_only() -> None:
    result = estimate(run_config())
    assert result.fits is None and result.free_gpu is None and result.gpu_total is None
    assert "no NVIDIA GPU: estimate only (NVIDIA driver not loaded)" in result.notes

    def broken() -> GpuSnapshot:
        raise RuntimeError("nvml exploded")

    failed = estimate_vram(LLAMA_1B, LLAMA_1B_PARAMETERS, LLAMA_LINEAR, run_config(), probe=broken)
    assert failed.fits is None
    assert any(note.startswith("no NVIDIA GPU") for note in failed.notes)


def test_the_training_gpu_follows_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    small = DeviceSample(index=0, memory_total=8 * GIB, memory_used=0)
    big = DeviceSample(index=1, memory_total=80 * GIB, memory_used=0)

    def two_gpus() -> GpuSnapshot:
        return GpuSnapshot(time=0.0, devices=(small, big))

    run = run_config()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    chosen = estimate_vram(LLAMA_1B, LLAMA_1B_PARAMETERS, LLAMA_LINEAR, run, probe=two_gpus)
    assert chosen.gpu_total == 80 * GIB
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    chosen = estimate_vram(LLAMA_1B, LLAMA_1B_PARAMETERS, LLAMA_LINEAR, run, probe=two_gpus)
    assert chosen.gpu_total == 8 * GIB


def test_unknown_modules_and_configs_are_named() -> None:
    run = run_config(lora={"target_modules": ["q_proj", "c_attn"]})
    result = estimate(run)
    assert result.lora_params == 16 * 4096 * 16
    assert any("c_attn" in note for note in result.notes)
    with pytest.raises(InputError, match="cannot estimate memory"):
        estimate_vram(SimpleNamespace(model_type="odd"), 10, (), run, probe=no_gpu)


def test_flash_attention_needs_no_mask() -> None:
    run = run_config(batch_size=4, max_seq_len=4096)
    assert estimate(run, attention="flash_attention_2").activations < estimate(run).activations


def test_compile_is_noted() -> None:
    assert any("torch.compile" in note for note in estimate(run_config(torch_compile=True)).notes)


def test_chunk_size_matches_the_trainer() -> None:
    from core.training.trainer import LOSS_CHUNK_TOKENS as TRAINER_CHUNK

    assert LOSS_CHUNK_TOKENS == TRAINER_CHUNK


def test_estimate_for_a_real_model_folder(tiny_model_dir: Path) -> None:
    run = replace(run_config(), base_model=str(tiny_model_dir))
    result = estimate_for_run(run, probe=no_gpu)
    # 2 layers, hidden 32, 4 heads of 8, 2 KV heads, intermediate 64; r=16 on all seven.
    per_layer = 16 * ((32 + 32) * 2 + (32 + 16) * 2 + (32 + 64) * 3)
    assert result.lora_params == 2 * per_layer
    assert result.total > result.overhead > 0
    assert result.fits is None


def test_importing_the_estimator_does_not_import_torch() -> None:
    code = "import sys, core.runs.vram; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
