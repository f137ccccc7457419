"""The decision desk's parts joined: cost at a stated volume, the stored record on Home."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tui.cli import main
from tui.demo import build_demo_workspace


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("decide-wiring") / "demo"
    build_demo_workspace(project, log=lambda _: None)
    return project / ".ftod"


def decide(workspace: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["--workspace", str(workspace), "decide", *args, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout, parse_constant=lambda token: pytest.fail(token))
    assert isinstance(payload, dict)
    return payload


def test_cost_joins_the_decision_only_at_a_stated_volume(demo: Path) -> None:
    assert decide(demo, "--symptom", "too_expensive")["cost"] is None
    payload = decide(demo, "--symptom", "too_expensive", "--requests-per-day", "5000")
    cost = payload["cost"]
    assert isinstance(cost, dict)
    assumptions = cost["assumptions"]
    assert isinstance(assumptions, dict)
    # No price is made up: unset prices stay unset and say so.
    assert "break_even_reached" in cost
    assert cost["break_even_reached"] is None
    assert payload["routes"][0]["symptom"] == "too_expensive"


@pytest.mark.parametrize(
    ("entries", "reached"),
    [
        ((), None),
        (((10.0, 3.0), (5.0, 8.0)), True),
        (((10.0, 3.0), (-2.0, None)), False),
        (((10.0, 3.0), (None, None)), None),
    ],
)
def test_break_even_is_reached_only_against_every_alternative(
    entries: tuple[tuple[float | None, float | None], ...], reached: bool | None
) -> None:
    from core.decide.cost import BreakEven, CostAssumptions, CostReport, Money
    from core.settings import WorkspaceSettings

    report = CostReport(
        assumptions=CostAssumptions.resolve(WorkspaceSettings()),
        training=None,
        training_reason=None,
        baseline=None,
        candidate=None,
        inference_reason=None,
        break_even=tuple(
            BreakEven(f"option {n}", Money(saving), days, None)
            for n, (saving, days) in enumerate(entries)
        ),
    )
    assert report.break_even_reached is reached
    assert report.as_json()["break_even_reached"] is reached


def test_the_knowledge_audit_joins_the_decision(demo: Path) -> None:
    payload = decide(demo, "--symptom", "tone", "--dataset", "support-tickets@2")
    audit = payload["knowledge_audit"]
    assert isinstance(audit, dict)
    assert audit["assistant_turns"] > 0
    assert audit["share"] > 0.05  # the demo's answers carry prices and return windows
    item = next(i for i in payload["checklist"] if i["id"] == "knowledge_audit")
    assert item["status"] == "fail"
    assert payload["verdict"] != "fine_tune"
