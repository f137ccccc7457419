"""The Evals screen and `ftod review` choose the review pair by one rule (core's
`choose_review_pair`): the gate's baseline before the latest earlier eval, for every eval."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from core.evals.review import NoPairChoice, PairChoice, choose_review_pair
from core.evals.service import import_eval, run_gate
from store.datasets import DatasetRepository
from store.db import Store
from store.errors import InputError
from store.evals import EvalRepository
from store.workspace import Workspace
from tests.conftest import write_jsonl as write_rows
from tests.test_review import B_WRONG, N, reference
from tests.tui.helpers import CREATED_AT, make_app, press
from tests.tui.test_evals_screen import build_evals_workspace, entries_of, open_evals
from tests.tui.test_review_snapshots import GATE
from tui.cli_review import default_pair, review
from tui.screens.evals import ReviewPair, choose_pair
from tui.screens.review import ReviewScreen


@pytest.fixture
def gated_newest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """The evals workspace plus tuned-v4 on support@1, gated against base: the newest eval's
    gate baseline (base) is not its latest earlier eval (tuned-v3)."""
    workspace = build_evals_workspace(tmp_path)
    store = Store.open(workspace)
    evals = EvalRepository(store)
    outputs = write_rows(
        tmp_path / "tuned-v4.jsonl",
        [{"line": i + 1, "output": reference(i) if i < 5 else B_WRONG} for i in range(N)],
    )
    import_eval(
        DatasetRepository(store), evals, "support@1", outputs, "tuned-v4", created_at=CREATED_AT
    )
    run_gate(evals, _gate_spec(tmp_path), "base", "tuned-v4", created_at=CREATED_AT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FTOD_REVIEWER", "alice")
    return workspace


def _gate_spec(folder: Path) -> Path:
    spec = folder / "gate-v4.yaml"
    spec.write_text(GATE)
    return spec


async def test_enter_and_ftod_review_open_the_same_pair(gated_newest: Workspace) -> None:
    evals = EvalRepository(Store.open(gated_newest))
    cli_pair = default_pair(evals)
    assert cli_pair == ("base", "tuned-v4")  # the gate's baseline, not tuned-v3
    app = make_app(gated_newest)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_evals(app, pilot)  # the tests' helper puts the cursor on top
        await press(pilot, *"jjjjj")
        assert screen.selected_eval_id() == screen.entries[-1].eval_id  # tuned-v4
        await press(pilot, "enter")
        room = app.screen
        assert isinstance(room, ReviewScreen)
        assert (room.baseline_ref, room.candidate_ref) == cli_pair


def test_every_candidate_gets_the_same_baseline_from_both(gated_newest: Workspace) -> None:
    evals = EvalRepository(Store.open(gated_newest))
    compared = 0
    for entry in entries_of(gated_newest):
        label = entry.record.label
        screen_pair = choose_pair(entries_of(gated_newest), entry.eval_id)
        if isinstance(screen_pair, ReviewPair):
            assert default_pair(evals, label) == (
                screen_pair.baseline.label,
                screen_pair.candidate.label,
            )
            compared += 1
        else:
            with pytest.raises(InputError, match="no earlier eval on the same dataset version"):
                default_pair(evals, label)
    assert compared == 4  # tuned, tuned-v2, tuned-v3, tuned-v4; base and faq-base have none


def test_the_rule_itself(gated_newest: Workspace) -> None:
    evals = EvalRepository(Store.open(gated_newest))
    records = evals.list_evals()
    ids = {record.label: record.eval_id for record in records}
    v4 = ids["tuned-v4"]
    gated = choose_review_pair(records, v4, evals.gate_results(v4))
    assert isinstance(gated, PairChoice) and gated.basis == "gate"
    assert gated.baseline.label == "base"
    # Without its gate results (not read yet) the latest earlier eval is the baseline.
    earlier = choose_review_pair(records, v4, ())
    assert isinstance(earlier, PairChoice) and earlier.basis == "earlier"
    assert earlier.baseline.label == "tuned-v3"
    # A chosen baseline wins over the gate, but only on the same dataset version.
    chosen = choose_review_pair(records, v4, evals.gate_results(v4), ids["tuned"])
    assert isinstance(chosen, PairChoice) and chosen.basis == "chosen"
    assert chosen.baseline.label == "tuned"
    other = choose_review_pair(records, v4, (), ids["faq-base"])
    assert isinstance(other, NoPairChoice) and other.reason == "chosen_other_version"
    itself = choose_review_pair(records, v4, (), v4)
    assert isinstance(itself, NoPairChoice) and itself.reason == "chosen_is_candidate"
    unknown = choose_review_pair(records, 999, ())
    assert isinstance(unknown, NoPairChoice) and unknown.reason == "unknown_candidate"


def test_ftod_review_with_only_a_baseline_is_a_usage_error(gated_newest: Workspace) -> None:
    import click

    @click.group()
    @click.pass_context
    def cli(ctx: click.Context) -> None:
        ctx.ensure_object(dict)
        ctx.obj["workspace"] = gated_newest.root

    cli.add_command(review)
    result = CliRunner().invoke(cli, ["review", "--baseline", "base"])
    assert result.exit_code == 2, result.output
    assert "--baseline needs a candidate" in result.output
    missing = CliRunner().invoke(cli, ["review", "--candidate", "base"])
    assert missing.exit_code == 2, missing.output
    assert "'base'" in missing.output and "no earlier eval" in missing.output
