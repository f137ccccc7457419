"""Setup of a run's model: the device, the compute dtype, the base model with its LoRA
adapter, and the versions that produced them (lineage)."""

from __future__ import annotations

import contextlib
import os
import platform
import random
from typing import Any

import numpy as np
import torch

from core.runs.config import ALL_LINEAR, RunConfig
from core.runs.rundir import hostname


def training_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast_for(device: torch.device, dtype: torch.dtype) -> Any:
    if device.type == "cuda" and dtype != torch.float32:
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def runtime_lineage(device: torch.device) -> dict[str, Any]:
    import peft
    import transformers

    lineage: dict[str, Any] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "host": hostname(),
        "device": device.type,
        "gpu_name": None,
        "gpu_driver": None,
    }
    if device.type == "cuda":
        lineage["gpu_name"] = torch.cuda.get_device_name(0)
        with contextlib.suppress(Exception):
            import pynvml

            pynvml.nvmlInit()
            driver = pynvml.nvmlSystemGetDriverVersion()
            lineage["gpu_driver"] = driver.decode() if isinstance(driver, bytes) else driver
    return lineage


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_model(config: RunConfig, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    """The base model wrapped in a fresh LoRA adapter, and its tokenizer."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = config.base_model
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    tokenizer = AutoTokenizer.from_pretrained(
        source, revision=config.revision, local_files_only=offline
    )
    kwargs: dict[str, Any] = {"revision": config.revision, "local_files_only": offline}
    if config.qlora.enabled:
        if device.type != "cuda":
            raise RuntimeError("QLoRA needs a CUDA GPU (bitsandbytes 4-bit); none is visible")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True,
            bnb_4bit_quant_type=config.qlora.quant_type,
            bnb_4bit_use_double_quant=config.qlora.double_quant,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": 0}
    kwargs["dtype"] = dtype
    with contextlib.suppress(Exception):
        import importlib.util

        if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
            kwargs["attn_implementation"] = "flash_attention_2"
    kwargs.setdefault("attn_implementation", "sdpa")
    model: Any = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if not config.qlora.enabled:
        model.to(device)
    if config.qlora.enabled:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
            model, use_gradient_checkpointing=config.train.gradient_checkpointing
        )
    elif config.train.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    target: Any = config.lora.target_modules
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=ALL_LINEAR if target == ALL_LINEAR else list(target),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return peft_model, tokenizer
