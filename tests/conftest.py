"""Shared fixtures: real workspaces in tmp_path, chat rows, an offline tokenizer."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SYSTEM = {"role": "system", "content": "You are a concise, friendly support agent for Acme."}


def chat(user: str, assistant: str, *, system: bool = True, **metadata: Any) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [SYSTEM] if system else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    row: dict[str, Any] = {"messages": messages}
    if metadata:
        row["metadata"] = metadata
    return row


def write_jsonl(path: Path, rows: Iterable[dict[str, Any] | str | bytes]) -> Path:
    with path.open("wb") as handle:
        for row in rows:
            if isinstance(row, bytes):
                handle.write(row + b"\n")
            elif isinstance(row, str):
                handle.write(row.encode() + b"\n")
            else:
                handle.write(json.dumps(row).encode() + b"\n")
    return path


CLEAN_TOPICS = [
    (
        "Where is my parcel? Tracking says it left the depot on Monday.",
        "It is with the local courier now and should be delivered by Thursday evening.",
    ),
    (
        "Can I change the delivery address for an order I placed this morning?",
        "Yes, as long as it has not shipped. I have updated it to the new address you gave.",
    ),
    (
        "The blender I bought arrived with a cracked jug. What can I do?",
        "I'm sorry about that. I've started a replacement; the courier will collect the broken one.",
    ),
    (
        "How do I turn on two-factor authentication for my account?",
        "Go to Settings, then Security, and choose 'Enable 2FA'. Scan the QR code with your app.",
    ),
    (
        "Why was I charged twice for the same subscription this month?",
        "One of the charges is a pending authorisation; it will drop off within three working days.",
    ),
    (
        "Does the X200 vacuum work on thick carpets?",
        "It does: switch it to turbo mode, which raises suction for deep pile carpets.",
    ),
    (
        "My smart plug keeps disconnecting from the Wi-Fi at night.",
        "Please move it off the 5 GHz band; the plug only supports 2.4 GHz networks.",
    ),
    (
        "Can I pay with a gift card and a credit card on one order?",
        "Yes. Enter the gift card first at checkout, then pay the rest by card.",
    ),
    (
        "What is your return window for shoes that do not fit?",
        "Unworn shoes can be returned for a full refund or an exchange.",
    ),
    (
        "The app crashes when I open my order history on Android.",
        "Update to the latest version from the Play Store; that release fixes the crash.",
    ),
]


def clean_rows() -> list[dict[str, Any]]:
    labels = [
        "shipping",
        "shipping",
        "refund",
        "account",
        "billing",
        "product",
        "tech",
        "billing",
        "refund",
        "tech",
    ]
    return [
        chat(user, assistant, label=label, slice="task", customer_id=f"c{index % 4}")
        for index, ((user, assistant), label) in enumerate(zip(CLEAN_TOPICS, labels, strict=True))
    ]


@pytest.fixture
def jsonl_file(tmp_path: Path) -> Callable[..., Path]:
    def make(rows: Iterable[dict[str, Any] | str | bytes], name: str = "data.jsonl") -> Path:
        return write_jsonl(tmp_path / name, rows)

    return make


@pytest.fixture
def workspace(tmp_path: Path) -> Any:
    from store.workspace import init_workspace

    ws, _ = init_workspace(tmp_path / "project")
    return ws


@pytest.fixture
def repository(workspace: Any) -> Any:
    from store.datasets import DatasetRepository
    from store.db import Store

    return DatasetRepository(Store.open(workspace))


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE tokenizer with a chat template, built offline in about a second."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-tokenizer")
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|pad|>", "<|bos|>", "<|eot|>", "<|system|>", "<|user|>", "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = [text for pair in CLEAN_TOPICS for text in pair] * 20
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer, bos_token="<|bos|>", eos_token="<|eot|>", pad_token="<|pad|>"
    )
    fast.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|eot|>{% endfor %}"
    )
    fast.save_pretrained(str(folder))
    return folder


def build_tiny_llama(
    folder: Path, tokenizer_dir: Path, *, seed: int = 0, hidden_size: int = 32
) -> Path:
    """A random Llama-shaped model (2 layers, hidden 32 unless told) saved with the tiny tokenizer."""
    import shutil

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    for item in tokenizer_dir.iterdir():
        shutil.copy(item, folder / item.name)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), tiny_tokenizer_dir)
