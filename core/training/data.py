"""From chat rows to training rows: the tokenizer's own chat template, loss on assistant turns.

A token is trained on when its characters fall inside an assistant turn's span in the
rendered template (its content and the end-of-turn marker after it, not the role header
before it) and that turn is not marked `weight: 0`. Spans come from rendering growing
prefixes of the conversation, so they follow whatever the template does.

Packing puts several examples in one row of `max_seq_len` tokens; position ids restart at
each example, which transformers turns into a block-diagonal attention mask (no example
attends to another), so no padding is computed and no attention leaks.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.tokens import is_loss_bearing

IGNORE_INDEX = -100
_MARKER = "\u2063ftod-assistant-content\u2063"


class DataError(Exception):
    """The training data cannot be used (reason `data_error`)."""


@dataclass(frozen=True, slots=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def loss_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


@dataclass(frozen=True, slots=True)
class PackedRow:
    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    real_tokens: int


def read_chat_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise DataError(f"{path.name} line {number}: not JSON ({error})") from error
            if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
                raise DataError(f"{path.name} line {number}: no `messages` list")
            rows.append(row)
    return rows


def _plain_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the template sees: role, content, tool calls; our own keys (weight) removed."""
    plain: list[dict[str, Any]] = []
    for message in messages:
        item = {k: v for k, v in message.items() if k != "weight"}
        if item.get("content") is None:
            item["content"] = ""
        plain.append(item)
    return plain


class ChatTokenizer:
    def __init__(self, tokenizer: Any, max_seq_len: int) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise DataError(
                "the tokenizer has no chat template; use the instruct model's tokenizer "
                "or add a `chat_template` to its tokenizer_config.json"
            )
        if not getattr(tokenizer, "is_fast", False):
            raise DataError("a fast tokenizer (tokenizer.json) is needed to locate turns")
        self.tokenizer = tokenizer
        self.max_seq_len = max_seq_len

    def _render(
        self, messages: list[dict[str, Any]], tools: Any, *, generation_prompt: bool
    ) -> str:
        text = self.tokenizer.apply_chat_template(
            messages,
            tools=tools or None,
            tokenize=False,
            add_generation_prompt=generation_prompt,
        )
        return str(text)

    def _content_start(
        self, plain: list[dict[str, Any]], index: int, tools: Any, full: str
    ) -> int | None:
        """Where assistant turn `index`'s content begins in the rendered conversation.

        Found by rendering the conversation up to that turn with a marker as its content,
        so the role header before it is never trained on, whether or not the template
        implements add_generation_prompt.
        """
        probe = [*plain[:index], dict(plain[index], content=_MARKER)]
        try:
            rendered = self._render(probe, tools, generation_prompt=False)
        except Exception:  # noqa: BLE001 - some templates validate content; use the prompt
            rendered = ""
        position = rendered.find(_MARKER)
        if position >= 0 and full.startswith(rendered[:position]):
            return position
        if index == 0:
            return None
        before = self._render(plain[:index], tools, generation_prompt=True)
        return len(before) if full.startswith(before) else None

    def loss_spans(self, row: dict[str, Any]) -> tuple[str, list[tuple[int, int]]]:
        messages = row["messages"]
        plain = _plain_messages(messages)
        tools = row.get("tools")
        full = self._render(plain, tools, generation_prompt=False)
        spans: list[tuple[int, int]] = []
        cursor = 0
        for index, message in enumerate(messages):
            if message.get("role") != "assistant":
                continue
            through = self._render(plain[: index + 1], tools, generation_prompt=False)
            start = self._content_start(plain, index, tools, full)
            if start is not None and full.startswith(through) and len(through) > start:
                end = len(through)
            else:
                # The template rewrites earlier turns (some drop old reasoning): fall back to
                # finding this turn's content after the previous one.
                content = str(message.get("content") or "")
                found = full.find(content, cursor) if content else -1
                if found < 0:
                    continue
                start, end = found, found + len(content)
                eot = getattr(self.tokenizer, "eos_token", None)
                if eot and full.startswith(eot, end):
                    end += len(eot)
            cursor = end
            if is_loss_bearing(message):
                spans.append((start, end))
        return full, spans

    def tokenize(self, row: dict[str, Any]) -> TokenizedExample:
        try:
            text, spans = self.loss_spans(row)
        except Exception as error:
            raise DataError(f"the chat template rejected a row ({error})") from error
        encoded = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False
        )
        ids: list[int] = list(encoded["input_ids"])
        offsets: list[tuple[int, int]] = list(encoded["offset_mapping"])
        labels = [IGNORE_INDEX] * len(ids)
        span_index = 0
        for position, (start, end) in enumerate(offsets):
            while span_index < len(spans) and spans[span_index][1] <= start:
                span_index += 1
            if span_index == len(spans):
                break
            span_start, span_end = spans[span_index]
            if end > span_start and start < span_end:
                labels[position] = ids[position]
        truncated = len(ids) > self.max_seq_len
        if truncated:
            ids, labels = ids[: self.max_seq_len], labels[: self.max_seq_len]
        return TokenizedExample(ids, labels, truncated)

    def tokenize_all(self, rows: Iterable[dict[str, Any]]) -> list[TokenizedExample]:
        return [self.tokenize(row) for row in rows]


def pack(examples: Sequence[TokenizedExample], row_len: int, pad_id: int) -> list[PackedRow]:
    """Best-fit-decreasing packing into rows of `row_len` tokens; examples never split.

    Examples without a single loss token are dropped: they would cost compute and teach
    nothing.
    """
    order = sorted(
        (e for e in examples if e.loss_tokens > 0), key=lambda e: len(e.input_ids), reverse=True
    )
    bins: list[list[TokenizedExample]] = []
    free: list[int] = []
    for example in order:
        size = len(example.input_ids)
        best = -1
        for index, room in enumerate(free):
            if room >= size and (best < 0 or room < free[best]):
                best = index
                if room == size:
                    break
        if best < 0:
            bins.append([example])
            free.append(row_len - size)
        else:
            bins[best].append(example)
            free[best] -= size
    return [_row(members, row_len, pad_id) for members in bins]


def _row(members: Sequence[TokenizedExample], row_len: int, pad_id: int) -> PackedRow:
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for example in members:
        ids += example.input_ids
        labels += example.labels
        positions += range(len(example.input_ids))
    real = len(ids)
    padding = row_len - real
    if padding > 0:
        ids += [pad_id] * padding
        labels += [IGNORE_INDEX] * padding
        positions += range(padding)
    return PackedRow(ids, labels, positions, real)


def unpacked_rows(examples: Sequence[TokenizedExample], pad_id: int) -> list[PackedRow]:
    """One example per row, unpadded; batches are padded to their longest row later."""
    return [
        PackedRow(e.input_ids, e.labels, list(range(len(e.input_ids))), len(e.input_ids))
        for e in examples
        if e.loss_tokens > 0
    ]


@functools.lru_cache(maxsize=4)
def epoch_order(n_rows: int, seed: int, epoch: int) -> tuple[int, ...]:
    """The row order of one epoch: reproducible from (seed, epoch) alone, so resume can
    rebuild the exact data position without storing the order."""
    order = list(range(n_rows))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return tuple(order)


@dataclass(frozen=True, slots=True)
class BatchPlan:
    rows_per_micro: int
    grad_accum: int
    micro_per_epoch: int
    total_steps: int

    @property
    def micro_per_step(self) -> int:
        return self.grad_accum

    def micro_batches_of_step(self, step: int, n_rows: int, seed: int) -> list[list[int]]:
        """Row indices of the micro-batches of optimizer step `step` (1-based)."""
        result: list[list[int]] = []
        first = (step - 1) * self.grad_accum
        for micro in range(first, first + self.grad_accum):
            epoch, within = divmod(micro, self.micro_per_epoch)
            order = epoch_order(n_rows, seed, epoch)
            start = within * self.rows_per_micro
            result.append(list(order[start : start + self.rows_per_micro]))
        return result

    def epoch_at(self, step: int) -> float:
        return step * self.grad_accum / self.micro_per_epoch


def plan_batches(
    n_rows: int, *, rows_per_micro: int, grad_accum: int, epochs: float, max_steps: int | None
) -> BatchPlan:
    if n_rows == 0:
        raise DataError("no training rows with an assistant turn to learn from")
    rows_per_micro = min(rows_per_micro, n_rows)
    micro_per_epoch = max(1, n_rows // rows_per_micro)
    if max_steps is not None:
        total = max_steps
    else:
        total = max(1, int(epochs * micro_per_epoch) // grad_accum)
    return BatchPlan(rows_per_micro, grad_accum, micro_per_epoch, total)
