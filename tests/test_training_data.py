"""What the trainer learns from: the loss mask, packing, data order, failure reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.runs.failures import classify_exception
from core.training.data import (
    IGNORE_INDEX,
    ChatTokenizer,
    DataError,
    TokenizedExample,
    epoch_order,
    pack,
    plan_batches,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


def trained_text(tokenizer: Any, example: TokenizedExample) -> str:
    ids = [i for i, label in zip(example.input_ids, example.labels, strict=True) if label != -100]
    return str(tokenizer.decode(ids))


def test_loss_only_on_assistant_content_and_its_end_of_turn(tokenizer: Any) -> None:
    row = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Where is my parcel?"},
            {"role": "assistant", "content": "With the courier."},
        ]
    }
    example = ChatTokenizer(tokenizer, 512).tokenize(row)
    assert trained_text(tokenizer, example) == "With the courier.<|eot|>"
    assert not example.truncated


def test_weight_zero_turns_are_not_trained_on(tokenizer: Any) -> None:
    row = {
        "messages": [
            {"role": "user", "content": "Say hi"},
            {"role": "assistant", "content": "Hi!", "weight": 0},
            {"role": "user", "content": "Again"},
            {"role": "assistant", "content": "Hello again!"},
        ]
    }
    example = ChatTokenizer(tokenizer, 512).tokenize(row)
    assert trained_text(tokenizer, example) == "Hello again!<|eot|>"


def test_every_assistant_turn_of_a_multi_turn_dialog_is_trained(tokenizer: Any) -> None:
    row = {
        "messages": [
            {"role": "user", "content": "One"},
            {"role": "assistant", "content": "First answer."},
            {"role": "user", "content": "Two"},
            {"role": "assistant", "content": "Second answer."},
        ]
    }
    example = ChatTokenizer(tokenizer, 512).tokenize(row)
    assert trained_text(tokenizer, example) == "First answer.<|eot|>Second answer.<|eot|>"


def test_long_rows_are_cut_and_flagged(tokenizer: Any) -> None:
    row = {
        "messages": [{"role": "user", "content": "x " * 400}, {"role": "assistant", "content": "y"}]
    }
    example = ChatTokenizer(tokenizer, 32).tokenize(row)
    assert len(example.input_ids) == 32 and example.truncated


def test_tokenizer_without_chat_template_is_a_data_error(tiny_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    bare = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    bare.chat_template = None
    with pytest.raises(DataError, match="chat template"):
        ChatTokenizer(bare, 128)


def example(length: int, loss: bool = True) -> TokenizedExample:
    labels = list(range(length)) if loss else [IGNORE_INDEX] * length
    return TokenizedExample(list(range(length)), labels, False)


def test_packing_fills_rows_without_splitting_examples() -> None:
    examples = [example(n) for n in (60, 50, 40, 30, 20, 10)] + [example(5, loss=False)]
    rows = pack(examples, 100, pad_id=0)
    assert all(len(row.input_ids) == 100 for row in rows)
    assert sum(row.real_tokens for row in rows) == 210, "the example without loss is dropped"
    assert len(rows) == 3
    for row in rows:
        # Positions restart at 0 at each packed example (block-diagonal attention).
        starts = [i for i, p in enumerate(row.position_ids) if p == 0]
        assert starts[0] == 0
        padding = row.input_ids[row.real_tokens :]
        assert all(label == IGNORE_INDEX for label in row.labels[row.real_tokens :])
        assert len(padding) == 100 - row.real_tokens


def test_data_order_is_a_function_of_seed_and_epoch() -> None:
    assert epoch_order(50, 3, 0) == epoch_order(50, 3, 0)
    assert epoch_order(50, 3, 0) != epoch_order(50, 3, 1)
    assert sorted(epoch_order(50, 3, 1)) == list(range(50))


def test_batch_plan_steps_and_positions() -> None:
    plan = plan_batches(10, rows_per_micro=2, grad_accum=2, epochs=3, max_steps=None)
    assert plan.micro_per_epoch == 5 and plan.total_steps == 7
    batches = plan.micro_batches_of_step(1, 10, seed=0)
    assert len(batches) == 2 and all(len(b) == 2 for b in batches)
    assert plan.epoch_at(7) == pytest.approx(2.8)
    with pytest.raises(DataError):
        plan_batches(0, rows_per_micro=2, grad_accum=1, epochs=1, max_steps=None)


class OutOfMemoryError(RuntimeError):
    """Looks like torch.cuda.OutOfMemoryError (classification is by name and message)."""


def test_oom_is_classified_with_peak_memory_and_advice() -> None:
    failure = classify_exception(
        OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        stage="train",
        peak_bytes=70 * 2**30,
        total_bytes=80 * 2**30,
    )
    assert failure.reason == "oom"
    assert "peak allocated 70.00 GiB of 80.00 GiB" in failure.message
    assert "gradient_checkpointing" in failure.message and "QLoRA" in failure.message
    cublas = classify_exception(RuntimeError("CUBLAS_STATUS_ALLOC_FAILED"), stage="train")
    assert cublas.reason == "oom"
    done_all = classify_exception(
        OutOfMemoryError("out of memory"), stage="train", gradient_checkpointing=True, qlora=True
    )
    assert "gradient_checkpointing" not in done_all.message and "QLoRA" not in done_all.message


def test_other_failures_get_their_reasons() -> None:
    assert classify_exception(DataError("bad row"), stage="train").reason == "data_error"
    assert classify_exception(OSError("no weights"), stage="model").reason == "model_error"
    assert classify_exception(ValueError("boom"), stage="train").reason == "error"


def test_a_line_cut_by_a_crash_does_not_swallow_the_next_writers_record(tmp_path: Path) -> None:
    from core.runs.rundir import EventWriter, read_new_records

    events = tmp_path / "events.jsonl"
    events.write_text('{"type": "train", "step": 1}\n{"type": "train", "st')
    assert [r["step"] for r in read_new_records(events, 0).records] == [1]
    with EventWriter(events) as writer:
        writer.write({"type": "start", "step": 1, "resumed_from": 1})
    tail = read_new_records(events, 0)
    assert [r["type"] for r in tail.records] == ["train", "start"]
    assert tail.malformed == 1
