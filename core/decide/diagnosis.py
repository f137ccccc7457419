"""Each symptom to the cheapest fix that can work, with its reason in plain words.

Knowledge symptoms go to retrieval and live actions to tools whatever the data says: a
fine-tune teaches behaviour, not facts. Behaviour symptoms earn `fine_tune` only when every
item of the minimum proof passes; cost symptoms only when the break-even is reached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from core.decide.checklist import ChecklistItem
from core.decide.symptoms import BEHAVIOUR_IDS, BY_ID
from store.prompts import PromptRecord

RouteId = Literal[
    "prompt",
    "retrieval",
    "tools",
    "fine_tune",
    "not_yet",
    "evaluate_first",
    "prompt_caching",
    "distill",
]
ROUTE_IDS: tuple[str, ...] = (
    "prompt",
    "retrieval",
    "tools",
    "fine_tune",
    "not_yet",
    "evaluate_first",
    "prompt_caching",
    "distill",
)
# Providers cache a prompt prefix from about this many tokens on; below it there is nothing
# to cache and a shorter prompt must come from elsewhere.
CACHEABLE_PREFIX_TOKENS = 1024
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Route:
    symptom: str
    route: RouteId
    reason: str
    next_step: str

    def as_json(self) -> dict[str, Any]:
        return {"symptom": self.symptom, "route": self.route, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class PrefixMeasure:
    """The shared prefix (system prompt and few-shot turns) of the baseline's prompt."""

    prompt: str
    chars: int
    tokens: int
    method: str

    def as_json(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "chars": self.chars,
            "tokens": self.tokens,
            "method": self.method,
            "cacheable_from_tokens": CACHEABLE_PREFIX_TOKENS,
        }


def measure_prefix(prompt: PromptRecord) -> PrefixMeasure:
    """Tokens of the prompt's system text and few-shot turns, estimated as chars/4: the
    desk has no tokenizer of the serving model, and says so in `method`."""
    parts = [prompt.system or ""]
    parts += [text for shot in prompt.few_shot for text in (shot.user, shot.assistant)]
    chars = sum(len(part) for part in parts)
    return PrefixMeasure(
        prompt=prompt.ref,
        chars=chars,
        tokens=chars // CHARS_PER_TOKEN,
        method="estimate: characters / 4 (no tokenizer)",
    )


_FIXED: Mapping[str, tuple[RouteId, str, str]] = {
    "ignores_instructions": (
        "prompt",
        "A model that ignores a vague prompt needs a clearer prompt, not new weights: state "
        "the instruction, show an example, and measure again.",
        "Write the instruction out in a prompt (`ftod prompt add`) and evaluate it "
        "(`ftod eval run --prompt NAME`).",
    ),
    "missing_facts": (
        "retrieval",
        '"It doesn\'t know X" is a knowledge gap; fine-tuning teaches behaviour, not facts, '
        "and a model trained on facts recites them without a source. Put the facts in "
        "retrieval.",
        "Index the documents that hold the facts and pass them in the prompt; the knowledge "
        "audit lists the facts to move out of the training answers.",
    ),
    "stale_facts": (
        "retrieval",
        "Out-of-date answers come from facts frozen into the weights or the prompt; "
        "retrieval keeps them current where a fine-tune would freeze them again.",
        "Move the volatile facts the knowledge audit finds into retrieval and template them "
        "out of the answers.",
    ),
    "private_docs": (
        "retrieval",
        '"It needs our data" means it needs to read your documents at answer time; '
        "retrieval does that and cites them, a fine-tune cannot.",
        "Index the documents and retrieve them per request; fine-tune only the behaviour "
        "around them if it still falls short.",
    ),
    "needs_actions": (
        "tools",
        "Balances, inventory and bookings change by the minute: the model must call a tool "
        "at answer time; no training can know them.",
        "Give the model tools (function calls) for the live lookups; `tool_discipline` is "
        "the symptom to name if it then calls them badly.",
    ),
    "fails_sometimes": (
        "evaluate_first",
        '"It fails sometimes" names no pattern, and a fine-tune needs one to learn. Build a '
        "sliced eval set to find where it fails, then decide again.",
        "Tag examples with metadata.slice, evaluate the baseline (`ftod eval run`), read "
        "`ftod evals show` per slice, and run `ftod decide` with the symptom you find.",
    ),
}


def _item(checklist: Sequence[ChecklistItem], item_id: str) -> ChecklistItem | None:
    return next((item for item in checklist if item.id == item_id), None)


def _proof_route(symptom: str, checklist: Sequence[ChecklistItem]) -> Route:
    label = BY_ID[symptom].label.lower()
    falls_short = _item(checklist, "baseline_falls_short")
    value = _item(checklist, "value")
    if falls_short is not None and falls_short.status == "fail":
        return Route(
            symptom,
            "prompt",
            f"{label}: {falls_short.evidence.get('reason', 'the baseline does not fall short')}; "
            "keep the prompt, a fine-tune would buy little.",
            "Keep the best prompt and gate changes to it with the eval set.",
        )
    if value is not None and value.status == "fail":
        return Route(
            symptom,
            "prompt",
            f"{label}: {value.evidence.get('reason', 'no value in training')}.",
            "Keep the behaviour in the prompt, where it can change without a training run.",
        )
    open_items = [item.id for item in checklist if item.status != "pass"]
    if not open_items:
        return Route(
            symptom,
            "fine_tune",
            f"{label}: the baseline with its best prompt fails in a repeated way, the data is "
            "clean and large enough, the eval is held out and a gate is set: every item of the "
            "proof passes.",
            "Train (`ftod train CONFIG.yaml`), evaluate the candidate on the same eval set, "
            "gate it, and `ftod decide NAME --refresh`.",
        )
    if symptom == "verbose":
        return Route(
            symptom,
            "prompt",
            "Too verbose: try a length instruction in the prompt and a length scorer first; "
            "a fine-tune only once the proof holds (open: " + ", ".join(open_items) + ").",
            "Add a length instruction to the prompt and evaluate it with a length scorer.",
        )
    return Route(
        symptom,
        "not_yet",
        f"{label} can be a fine-tune, but the proof is not complete (open: "
        + ", ".join(open_items)
        + ").",
        "Close the open checklist items; each comes with the command that closes it.",
    )


def _break_even_reached(cost: Mapping[str, Any]) -> bool | None:
    """The cost result's own answer; None when it gives none."""
    reached = cost.get("break_even_reached")
    if reached is None and isinstance(cost.get("break_even"), Mapping):
        reached = cost["break_even"].get("reached")
    return reached if isinstance(reached, bool) else None


def _cost_route(
    symptom: str, prefix: PrefixMeasure | None, cost: Mapping[str, Any] | None
) -> Route:
    what = "cost" if symptom == "too_expensive" else "latency"
    reached = None if cost is None else _break_even_reached(cost)
    if reached:
        return Route(
            symptom,
            "fine_tune",
            f"The break-even is reached: a fine-tune that shortens the prompt pays back its "
            f"training within the horizon at your volume, cutting {what}.",
            "Train a model on the short prompt, gate it against the long one, and "
            "`ftod decide NAME --refresh`.",
        )
    known = (
        "the break-even is unknown (no cost result)"
        if reached is None
        else "the break-even is not reached at your volume"
    )
    if prefix is not None and prefix.tokens >= CACHEABLE_PREFIX_TOKENS:
        return Route(
            symptom,
            "prompt_caching",
            f"The prompt {prefix.prompt} shares a prefix of about {prefix.tokens} tokens "
            f"({prefix.method}) across requests: prompt caching cuts its {what} with no "
            f"training; {known}.",
            "Turn on prompt caching for the system prompt and few-shot turns, then measure.",
        )
    measured = (
        "no baseline prompt to measure"
        if prefix is None
        else f"the prompt's shared prefix is about {prefix.tokens} tokens ({prefix.method}), "
        f"below the {CACHEABLE_PREFIX_TOKENS} a cache needs"
    )
    return Route(
        symptom,
        "distill",
        f"To cut {what} without a long shared prefix to cache ({measured}), distill: train a "
        f"small model on a strong model's outputs; {known}.",
        "Generate outputs with the strong model, train a small one on them, and gate it.",
    )


def diagnose(
    symptoms: Sequence[str],
    checklist: Sequence[ChecklistItem],
    *,
    prefix: PrefixMeasure | None = None,
    cost: Mapping[str, Any] | None = None,
) -> tuple[Route, ...]:
    """One route per symptom, in the order named (each symptom once)."""
    routes: list[Route] = []
    for symptom in dict.fromkeys(symptoms):
        if symptom in _FIXED:
            route, reason, next_step = _FIXED[symptom]
            routes.append(Route(symptom, route, reason, next_step))
        elif symptom in BEHAVIOUR_IDS:
            routes.append(_proof_route(symptom, checklist))
        elif symptom in ("too_expensive", "too_slow"):
            routes.append(_cost_route(symptom, prefix, cost))
        else:
            raise KeyError(symptom)
    return tuple(routes)
