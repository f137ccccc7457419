"""A stored decision read back: what changed since its previous version, and the Markdown page
for the decision meeting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from store.decisions import DecisionRecord


def _statuses(payload: Mapping[str, Any]) -> dict[str, str]:
    return {str(item["id"]): str(item["status"]) for item in payload.get("checklist", [])}


def _routes(payload: Mapping[str, Any]) -> dict[str, str]:
    return {str(route["symptom"]): str(route["route"]) for route in payload.get("routes", [])}


def changes(previous: DecisionRecord | None, current: DecisionRecord) -> list[dict[str, Any]]:
    """Each difference that can change the decision: verdict, checklist statuses, routes,
    symptoms, answers and the gate verdict. Empty for a first version or an unchanged one."""
    if previous is None:
        return []
    found: list[dict[str, Any]] = []
    if previous.verdict != current.verdict:
        found.append({"field": "verdict", "from": previous.verdict, "to": current.verdict})
    before, after = _statuses(previous.payload), _statuses(current.payload)
    for item in dict.fromkeys([*before, *after]):
        if before.get(item) != after.get(item):
            found.append(
                {"field": f"checklist.{item}", "from": before.get(item), "to": after.get(item)}
            )
    before, after = _routes(previous.payload), _routes(current.payload)
    for symptom in dict.fromkeys([*before, *after]):
        if before.get(symptom) != after.get(symptom):
            found.append(
                {"field": f"route.{symptom}", "from": before.get(symptom), "to": after.get(symptom)}
            )
    for key in sorted(set(previous.answers) | set(current.answers)):
        if previous.answers.get(key) != current.answers.get(key):
            found.append(
                {
                    "field": f"answers.{key}",
                    "from": previous.answers.get(key),
                    "to": current.answers.get(key),
                }
            )
    gate_before = (previous.payload.get("gate") or {}).get("verdict")
    gate_after = (current.payload.get("gate") or {}).get("verdict")
    if gate_before != gate_after:
        found.append({"field": "gate", "from": gate_before, "to": gate_after})
    return found


def record_json(record: DecisionRecord, previous: DecisionRecord | None) -> dict[str, Any]:
    """The stored decision as `decide --json` printed it, then who, when and what changed."""
    payload = dict(record.payload)
    payload.update(
        {
            "name": record.name,
            "version": record.version,
            "symptoms": list(record.symptoms),
            "answers": record.answers,
            "reviewer": record.reviewer,
            "created_at": record.created_at.isoformat(),
            "previous_version": None if previous is None else previous.version,
            "changes": changes(previous, record),
        }
    )
    return payload


def _cell(value: Any) -> str:
    text = "—" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _evidence_text(evidence: Mapping[str, Any]) -> str:
    if "reason" in evidence:
        return str(evidence["reason"])
    shown = [
        f"{key}={value}"
        for key, value in evidence.items()
        if isinstance(value, int | float | str | bool) and value is not None
    ]
    return ", ".join(shown[:6])


def markdown(record: DecisionRecord, previous: DecisionRecord | None) -> str:
    """The record as a page for the decision meeting."""
    payload = record.payload
    lines = [
        f"# Decision: {record.name} (version {record.version})",
        "",
        f"**Verdict: {record.verdict}** — {payload.get('summary', '')}",
        "",
        f"Decided by {record.reviewer} on {record.created_at:%Y-%m-%d %H:%M}.",
        "",
        "## Symptoms and routes",
        "",
        "| symptom | route | reason |",
        "|---|---|---|",
    ]
    lines += [
        f"| {_cell(route['symptom'])} | {_cell(route['route'])} | {_cell(route['reason'])} |"
        for route in payload.get("routes", [])
    ]
    lines += ["", "## The minimum proof", "", "| item | status | evidence |", "|---|---|---|"]
    lines += [
        f"| {_cell(item['id'])} | {_cell(item['status'])} | "
        f"{_cell(_evidence_text(item.get('evidence', {})))} |"
        for item in payload.get("checklist", [])
    ]
    steps = payload.get("next_steps") or []
    if steps:
        lines += ["", "## To close before deciding again", ""]
        lines += [f"- `{step['item']}` ({step['status']}): {step['command']}" for step in steps]
    gate = payload.get("gate")
    if gate:
        lines += ["", "## Gate", "", f"Gate result {gate['gate_id']}: {gate['verdict']}."]
    assumptions = payload.get("assumptions") or []
    if assumptions:
        lines += ["", "## Assumptions", "", "| name | value | from |", "|---|---|---|"]
        lines += [
            f"| {_cell(item['name'])} | {_cell(item['value'])} | {_cell(item['source'])} |"
            for item in assumptions
        ]
    answers = record.answers
    lines += [
        "",
        "## Answers",
        "",
        f"- requests per day: {_cell(answers.get('requests_per_day'))}",
        f"- behaviour stable: {_cell(answers.get('stable'))}",
    ]
    found = changes(previous, record)
    if previous is not None:
        lines += ["", f"## Changed since version {previous.version}", ""]
        lines += [f"- {c['field']}: {c['from']} → {c['to']}" for c in found] or ["- nothing"]
    return "\n".join(lines) + "\n"
