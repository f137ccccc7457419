"""Token counts per example: exact with a local tokenizer and its chat template, else estimated.

transformers is imported only when a tokenizer folder is given, so `import core` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from store.errors import InputError

# Per-message overhead of typical chat templates (role header + end-of-turn markers).
ESTIMATED_TOKENS_PER_MESSAGE = 4
DEFAULT_MAX_SEQ_LEN = 2048


def estimate_tokens(text: str) -> int:
    """About 4 characters per token for Latin text; non-ASCII characters count about 1 each.

    BPE tokenizers of current chat models average 3.5-4.5 chars per token on English;
    CJK and other non-Latin scripts are closer to one token per character.
    """
    if text.isascii():
        return (len(text) + 3) // 4
    non_ascii = sum(1 for char in text if ord(char) > 127)
    return (len(text) - non_ascii + 3) // 4 + non_ascii


def estimated_message_tokens(text: str) -> int:
    """A message's estimated tokens: its text plus the chat template's per-turn markers."""
    return estimate_tokens(text) + ESTIMATED_TOKENS_PER_MESSAGE


def is_loss_bearing(message: dict[str, Any]) -> bool:
    """Whether training computes loss on this turn: assistant turns not marked `weight: 0`."""
    return bool(message["role"] == "assistant" and message.get("weight", 1) != 0)


class TokenCounter(Protocol):
    label: str
    exact: bool

    def count(self, messages: list[dict[str, Any]], texts: list[str]) -> tuple[int, int]:
        """(total tokens, loss-bearing assistant tokens) of one conversation."""
        ...


@dataclass
class EstimatedCounter:
    label: str = "estimated (~4 chars/token)"
    exact: bool = False

    def count(self, messages: list[dict[str, Any]], texts: list[str]) -> tuple[int, int]:
        total = 0
        assistant = 0
        for message, text in zip(messages, texts, strict=True):
            tokens = estimated_message_tokens(text)
            total += tokens
            if is_loss_bearing(message):
                assistant += tokens
        return total, assistant


class TokenizerCounter:
    """Counts with a local Hugging Face tokenizer folder and its own chat template."""

    exact = True

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise InputError(
                f"--tokenizer {folder}: not a folder (expected a local HF tokenizer folder)"
            )
        try:
            from transformers import AutoTokenizer  # heavy: imported only when asked for

            self._tokenizer: Any = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except Exception as error:
            raise InputError(
                f"--tokenizer {folder}: cannot load a tokenizer there ({error})"
            ) from error
        self._has_template = bool(getattr(self._tokenizer, "chat_template", None))
        self.label = f"tokenizer {folder.name}" + (
            "" if self._has_template else " (no chat template)"
        )

    def _encode(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def count(self, messages: list[dict[str, Any]], texts: list[str]) -> tuple[int, int]:
        assistant = sum(
            self._encode(text) + 1  # + end-of-turn token, which is trained on
            for message, text in zip(messages, texts, strict=True)
            if is_loss_bearing(message)
        )
        if self._has_template:
            try:
                simple = [
                    {"role": m["role"], "content": t} for m, t in zip(messages, texts, strict=True)
                ]
                ids = self._tokenizer.apply_chat_template(simple, tokenize=True)
                if isinstance(ids, dict) or hasattr(ids, "keys"):
                    ids = ids["input_ids"]
                return len(ids), assistant
            except Exception:  # noqa: BLE001 - templates reject some role orders; fall back
                pass
        total = sum(self._encode(text) + ESTIMATED_TOKENS_PER_MESSAGE for text in texts)
        return total, assistant


def make_counter(tokenizer_dir: Path | None) -> TokenCounter:
    return TokenizerCounter(tokenizer_dir) if tokenizer_dir is not None else EstimatedCounter()
