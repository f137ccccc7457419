"""The fixed vocabulary of symptoms a user can name. The ids are a contract: they only grow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SymptomKind = Literal["knowledge", "instructions", "actions", "behaviour", "reliability", "cost"]


@dataclass(frozen=True, slots=True)
class Symptom:
    id: str
    label: str
    explanation: str
    kind: SymptomKind


SYMPTOMS: tuple[Symptom, ...] = (
    Symptom(
        "ignores_instructions",
        "It ignores instructions",
        "It doesn't do what the prompt asks; the prompt is vague.",
        "instructions",
    ),
    Symptom("missing_facts", "It doesn't know X", "It lacks facts it should know.", "knowledge"),
    Symptom("stale_facts", "Its facts are stale", "Its answers are out of date.", "knowledge"),
    Symptom(
        "private_docs",
        "It needs our documents",
        "It needs our data or our documents to answer.",
        "knowledge",
    ),
    Symptom(
        "needs_actions",
        "It must act live",
        "It must look something up or act live (balances, inventory, bookings).",
        "actions",
    ),
    Symptom(
        "format",
        "Wrong format",
        "It drifts from a repeated, stable output format.",
        "behaviour",
    ),
    Symptom("tone", "Wrong tone", "It drifts from the house voice.", "behaviour"),
    Symptom(
        "domain_phrasing",
        "Wrong domain phrasing",
        "It does not phrase things the way the domain does.",
        "behaviour",
    ),
    Symptom(
        "classification_boundary",
        "Wrong labels",
        "It puts the boundary between classes in the wrong place.",
        "behaviour",
    ),
    Symptom(
        "tool_discipline",
        "Sloppy tool calls",
        "It calls tools at the wrong time or with the wrong arguments.",
        "behaviour",
    ),
    Symptom("verbose", "Too verbose", "Its answers are longer than they should be.", "behaviour"),
    Symptom(
        "fails_sometimes",
        "It fails sometimes",
        "It fails on some inputs, with no pattern named yet.",
        "reliability",
    ),
    Symptom("too_expensive", "Too expensive", "It costs too much per request at volume.", "cost"),
    Symptom("too_slow", "Too slow", "Its latency is too high at volume.", "cost"),
)

SYMPTOM_IDS: tuple[str, ...] = tuple(symptom.id for symptom in SYMPTOMS)
BY_ID: dict[str, Symptom] = {symptom.id: symptom for symptom in SYMPTOMS}
BEHAVIOUR_IDS: frozenset[str] = frozenset(s.id for s in SYMPTOMS if s.kind == "behaviour")
