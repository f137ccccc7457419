"""From training rows to the tensors of one micro-batch, and the counts a step needs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from core.training.data import IGNORE_INDEX, PackedRow


def loss_token_count(rows: Sequence[PackedRow]) -> int:
    """Tokens whose next-token prediction is trained on: the step's loss is their mean."""
    return sum(sum(1 for label in row.labels[1:] if label != IGNORE_INDEX) for row in rows)


def collate(rows: list[PackedRow], device: torch.device, pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(row.input_ids) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    ragged = False
    for index, row in enumerate(rows):
        length = len(row.input_ids)
        ragged = ragged or length != width
        ids[index, :length] = torch.tensor(row.input_ids)
        labels[index, :length] = torch.tensor(row.labels)
        positions[index, :length] = torch.tensor(row.position_ids)
    batch = {"input_ids": ids, "labels": labels, "position_ids": positions}
    if ragged:
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            mask[index, : len(row.input_ids)] = 1
        batch["attention_mask"] = mask
    pin = device.type == "cuda"
    return {
        key: (value.pin_memory() if pin else value).to(device, non_blocking=True)
        for key, value in batch.items()
    }
