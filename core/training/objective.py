"""The training objective: the one seam between a batch and what the optimizer minimises.

An objective is a function from (model, batch) to an `ObjectiveOutput`: the loss summed
over the batch's loss-bearing tokens, and any further metrics to log, summed the same way.
The loop divides both by the step's loss-token count (micro-batches weigh what their
tokens weigh) and logs them with the step. Supervised fine-tuning is the first objective;
a preference objective plugs in here with the same signature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from core.training.data import IGNORE_INDEX

LOSS_CHUNK_TOKENS = 8192


@dataclass(frozen=True, slots=True)
class ObjectiveOutput:
    loss_sum: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    """Extra step metrics, each a 0-d tensor summed over the batch (not yet averaged)."""


Objective = Callable[[Any, dict[str, torch.Tensor]], ObjectiveOutput]


def supervised_objective(peft_model: Any, batch: dict[str, torch.Tensor]) -> ObjectiveOutput:
    """Next-token cross-entropy on the assistant tokens (labels not IGNORE_INDEX)."""
    loss_sum, _ = token_losses(peft_model, batch)
    return ObjectiveOutput(loss_sum)


def token_losses(
    peft_model: Any,
    batch: dict[str, torch.Tensor],
    *,
    with_accuracy: bool = False,
    chunk_tokens: int = LOSS_CHUNK_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Summed cross-entropy over loss-bearing tokens (and the count of correct argmaxes).

    The LM head runs only on positions whose next token is trained on, in chunks of
    `chunk_tokens`, so the (tokens × vocabulary) logits never exist for the prompt part.
    """
    causal_lm = peft_model.base_model.model
    decoder = getattr(causal_lm, causal_lm.base_model_prefix)
    hidden = decoder(
        input_ids=batch["input_ids"],
        position_ids=batch["position_ids"],
        attention_mask=batch.get("attention_mask"),
        use_cache=False,
    ).last_hidden_state
    labels = batch["labels"][:, 1:]
    hidden = hidden[:, :-1]
    selected = labels != IGNORE_INDEX
    flat_hidden = hidden[selected]
    flat_labels = labels[selected]
    head = causal_lm.get_output_embeddings()
    softcap = getattr(causal_lm.config, "final_logit_softcapping", None)
    total = flat_hidden.new_zeros((), dtype=torch.float32)
    correct = flat_hidden.new_zeros((), dtype=torch.float32) if with_accuracy else None
    for start in range(0, flat_hidden.shape[0], chunk_tokens):
        logits = head(flat_hidden[start : start + chunk_tokens]).float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        target = flat_labels[start : start + chunk_tokens]
        total = total + torch.nn.functional.cross_entropy(logits, target, reduction="sum")
        if correct is not None:
            correct = correct + (logits.argmax(-1) == target).sum().float()
    return total, correct
