"""The review room's store and core: verdicts replaced per reviewer, queue filters and
categories on a hand-built pair of evals, the word diff, Cohen's κ and the JSONL export."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from core.datasets import add_dataset
from core.evals.review import (
    build_queue,
    categorize,
    cohens_kappa,
    current_reviewer,
    export_reviews,
    filter_queue,
    load_pair,
    load_review_room,
    resume_index,
    reviewer_agreement,
    word_diff,
    write_jsonl,
)
from core.evals.service import import_eval
from store.datasets import DatasetRepository
from store.db import Store
from store.errors import InputError
from store.evals import EvalRepository
from store.reviews import ReviewRepository
from store.workspace import Workspace, init_workspace
from tests.conftest import chat
from tests.conftest import write_jsonl as write_rows
from tui.cli_review import default_pair, review

N = 8
A_RIGHT = frozenset({0, 1, 2, 3})
B_RIGHT = frozenset({0, 2, 4, 5})
A_WRONG = "I do not know."
B_WRONG = "Sorry, I cannot help with refunds."
# Expected category of each row under `exact` (row i is dataset line i + 1).
CATEGORIES = {
    1: "both_pass",
    2: "regression",
    3: "both_pass",
    4: "regression",
    5: "improvement",
    6: "improvement",
    7: "both_fail",
    8: "both_fail",
}


def reference(i: int) -> str:
    return f"Answer {i}: the refund takes {i + 2} days to reach your account."


def slice_of(i: int) -> str:
    return "billing" if i % 2 == 0 else "shipping"


def build_pair_workspace(folder: Path) -> Workspace:
    """support@1 with 8 rows in two slices, and evals `base` (1) and `tuned` (2) of it."""
    workspace, _ = init_workspace(folder)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    rows = [
        chat(f"Ticket {i} {words[i]}: when does refund {i * 37} arrive?", reference(i))
        | {"metadata": {"slice": slice_of(i)}}
        for i in range(N)
    ]
    source = write_rows(folder / "support.jsonl", rows)
    store = Store.open(workspace)
    datasets = DatasetRepository(store)
    add_dataset(workspace, datasets, source, "support")
    evals = EvalRepository(store)
    a = [{"line": i + 1, "output": reference(i) if i in A_RIGHT else A_WRONG} for i in range(N)]
    b = [{"line": i + 1, "output": reference(i) if i in B_RIGHT else B_WRONG} for i in range(N)]
    import_eval(datasets, evals, "support@1", write_rows(folder / "a.jsonl", a), "base")
    import_eval(datasets, evals, "support@1", write_rows(folder / "b.jsonl", b), "tuned")
    return workspace


@pytest.fixture
def pair_workspace(tmp_path: Path) -> Workspace:
    return build_pair_workspace(tmp_path / "project")


def repositories(workspace: Workspace) -> tuple[EvalRepository, ReviewRepository]:
    store = Store.open(workspace)
    return EvalRepository(store), ReviewRepository(store)


# -- store ---------------------------------------------------------------------------------------


def test_a_rejudgement_replaces_the_reviewers_earlier_verdict(pair_workspace: Workspace) -> None:
    _evals, reviews = repositories(pair_workspace)
    reviews.save_verdict(1, 2, 3, "alice", "baseline", "first look")
    reviews.save_verdict(1, 2, 3, "alice", "candidate", "on reflection", "Fixed answer")
    reviews.save_verdict(1, 2, 3, "bob", "tie")
    reviews.save_verdict(1, 2, 5, "bob", "both_wrong")
    mine = reviews.verdicts(1, 2, "alice")
    assert [(r.line, r.verdict, r.note, r.corrected) for r in mine] == [
        (3, "candidate", "on reflection", "Fixed answer")
    ]
    assert isinstance(mine[0].created_at, datetime)
    assert [(r.line, r.reviewer) for r in reviews.verdicts(1, 2)] == [
        (3, "alice"),
        (3, "bob"),
        (5, "bob"),
    ]
    assert reviews.reviewed_lines(1, 2, "bob") == {3, 5}
    assert reviews.reviewers(1, 2) == ["alice", "bob"]
    assert reviews.verdicts(2, 1) == []
    with pytest.raises(InputError):
        reviews.save_verdict(1, 2, 3, "alice", "maybe")
    with pytest.raises(InputError):
        reviews.save_verdict(1, 2, 3, "  ", "tie")


# -- the queue -----------------------------------------------------------------------------------


def test_queue_items_and_categories(pair_workspace: Workspace) -> None:
    evals, _ = repositories(pair_workspace)
    pair = load_pair(evals, "base", "tuned")
    assert pair.scorer == "exact" and pair.kind == "pass_fail"
    assert {item.line: item.category for item in pair.items} == CATEGORIES
    first = pair.items[1]
    assert first.line == 2 and first.slice == "shipping"
    assert first.reference == reference(1)
    assert [m["role"] for m in first.messages] == ["system", "user"]
    assert (first.baseline_output, first.candidate_output) == (reference(1), B_WRONG)
    assert (first.score_a, first.score_b) == (1.0, 0.0)
    assert pair.slices == ("billing", "shipping")


def test_queue_filters(pair_workspace: Workspace) -> None:
    evals, _ = repositories(pair_workspace)

    def lines(**kwargs: Any) -> list[int]:
        return [item.line for item in build_queue(evals, "base", "tuned", **kwargs)]

    assert lines() == list(range(1, N + 1))
    assert lines(queue_filter="disagreements") == [2, 4, 5, 6]
    assert lines(queue_filter="regressions") == [2, 4]
    assert lines(queue_filter="improvements") == [5, 6]
    assert lines(slice_name="billing") == [1, 3, 5, 7]
    assert lines(queue_filter="disagreements", slice_name="shipping") == [2, 4, 6]
    assert lines(search="CANNOT help") == [2, 4, 7, 8]
    assert lines(search="ticket 6 golf") == [7]
    with pytest.raises(InputError):
        filter_queue((), "sometimes")  # type: ignore[arg-type]
    # Another scorer is computed on the fly: contains:refund passes every output but A's.
    refund = build_queue(evals, "base", "tuned", "contains:refund", queue_filter="improvements")
    assert [item.line for item in refund] == [5, 6, 7, 8]


def test_categorize_and_resume() -> None:
    assert categorize(0.0, 1.0) == "improvement"
    assert categorize(1.0, 0.0) == "regression"
    assert categorize(1.0, 1.0) == "both_pass"
    assert categorize(0.0, 0.0) == "both_fail"
    assert categorize(None, 1.0) == "disagreement"
    assert categorize(None, None) == "unscored"
    assert categorize(0.2, 0.7) == "improvement"


def test_resume_index(pair_workspace: Workspace) -> None:
    evals, _ = repositories(pair_workspace)
    queue = build_queue(evals, "base", "tuned")
    assert resume_index(queue, set()) == 0
    assert resume_index(queue, {1, 2}) == 2
    assert resume_index(queue, {1, 2, 4}, start=3) == 4
    assert resume_index(queue, {7, 8}, start=6) == 0  # wraps to the first unreviewed
    assert resume_index(queue, set(range(1, N + 1)), start=5) == 5
    assert resume_index((), {1}) == 0


def test_same_eval_and_other_versions_are_refused(pair_workspace: Workspace) -> None:
    evals, _ = repositories(pair_workspace)
    with pytest.raises(InputError, match="same eval"):
        load_pair(evals, "base", "base")


# -- word diff -----------------------------------------------------------------------------------


def test_word_diff_opcodes_rebuild_both_texts() -> None:
    a = "The refund takes three days to arrive."
    b = "The refund takes five working days to arrive!"
    ops = word_diff(a, b)
    assert "".join(op.a_text for op in ops) == a
    assert "".join(op.b_text for op in ops) == b
    assert [(op.tag, op.a_text.strip(), op.b_text.strip()) for op in ops] == [
        ("equal", "The refund takes", "The refund takes"),
        ("replace", "three", "five working"),
        ("equal", "days to", "days to"),
        ("replace", "arrive.", "arrive!"),
    ]
    assert [op.tag for op in word_diff("", "new words")] == ["insert"]
    assert [op.tag for op in word_diff("old", "")] == ["delete"]
    assert word_diff("", "") == ()
    spaced = word_diff("  lead  and trail ", "lead trail")
    assert "".join(op.a_text for op in spaced) == "  lead  and trail "
    assert [op.tag for op in spaced] == ["equal", "delete", "equal"]


# -- agreement -----------------------------------------------------------------------------------

R1 = ["baseline", "baseline", "candidate", "candidate", "tie"]
R1 += ["tie", "both_wrong", "baseline", "candidate", "tie"]
R2 = ["baseline", "candidate", "candidate", "candidate", "tie"]
R2 += ["baseline", "both_wrong", "baseline", "tie", "tie"]


def sklearn_kappa(first: list[str], second: list[str]) -> float:
    """sklearn.metrics.cohen_kappa_score's formula, written out: 1 − Σ w·C / Σ w·E with
    w = 1 − I, C the confusion matrix and E the outer product of its margins over n."""
    labels = sorted(set(first) | set(second))
    index = {label: position for position, label in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)))
    for x, y in zip(first, second, strict=True):
        confusion[index[x], index[y]] += 1
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / confusion.sum()
    weights = 1 - np.eye(len(labels))
    return float(1 - (weights * confusion).sum() / (weights * expected).sum())


def test_cohens_kappa_by_hand() -> None:
    # 7 of 10 agree: p_o = 0.7. Margins: both raters 3 baseline, 3 candidate, 3 tie, 1 both
    # wrong, so p_e = 3 × 0.3 × 0.3 + 0.1 × 0.1 = 0.28 and κ = 0.42 / 0.72 = 7/12.
    pairs = list(zip(R1, R2, strict=True))
    assert cohens_kappa(pairs) == pytest.approx(7 / 12)
    assert cohens_kappa(pairs) == pytest.approx(sklearn_kappa(R1, R2))
    assert cohens_kappa([("tie", "tie"), ("baseline", "baseline")]) == pytest.approx(1.0)
    assert cohens_kappa([("tie", "baseline"), ("baseline", "tie")]) == pytest.approx(-1.0)
    assert cohens_kappa([]) is None
    assert cohens_kappa([("tie", "tie")] * 3) is None  # p_e = 1: undefined


def test_reviewer_agreement_on_common_examples(pair_workspace: Workspace) -> None:
    _evals, reviews = repositories(pair_workspace)
    for line, (first, second) in enumerate(zip(R1, R2, strict=True), start=1):
        reviews.save_verdict(1, 2, line, "alice", first)
        reviews.save_verdict(1, 2, line, "bob", second)
    reviews.save_verdict(1, 2, 1, "carol", "tie")
    reviews.save_verdict(1, 2, 99, "dave", "tie")  # shares nothing with anyone
    found = {(a.first, a.second): a for a in reviewer_agreement(reviews.verdicts(1, 2))}
    assert set(found) == {("alice", "bob"), ("alice", "carol"), ("bob", "carol")}
    assert found[("alice", "bob")].common == 10
    assert found[("alice", "bob")].kappa == pytest.approx(7 / 12)
    assert found[("alice", "carol")].common == 1


def test_room_loads_gate_and_the_reviewers_verdicts(
    pair_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    evals, reviews = repositories(pair_workspace)
    monkeypatch.setenv("FTOD_REVIEWER", "alice")
    assert current_reviewer() == "alice"
    reviews.save_verdict(1, 2, 2, "alice", "baseline")
    reviews.save_verdict(1, 2, 2, "bob", "baseline")
    room = load_review_room(evals, reviews, "base", "tuned")
    assert room.reviewer == "alice" and set(room.mine) == {2}
    assert room.gate is None
    assert room.comparison is not None
    assert [s.slice for s in room.comparison.slices] == ["billing", "shipping"]
    assert room.comparison.overall.n == N
    assert room.agreement[0].kappa is None  # one common example, one label: undefined
    evals.add_gate_result(
        baseline_eval_id=1,
        candidate_eval_id=2,
        spec_hash="x",
        spec={},
        passed=False,
        verdict={"rules": [{"slice": "billing", "passed": True}, {"slice": "shipping"}]},
    )
    gate = load_review_room(evals, reviews, "base", "tuned").gate
    assert gate is not None and not gate.passed
    assert dict(gate.slices) == {"billing": True, "shipping": False}


# -- export --------------------------------------------------------------------------------------


def test_export_rows(pair_workspace: Workspace, tmp_path: Path) -> None:
    evals, reviews = repositories(pair_workspace)
    reviews.save_verdict(1, 2, 2, "alice", "baseline", "B lost the refund time")
    reviews.save_verdict(1, 2, 5, "alice", "candidate")
    reviews.save_verdict(1, 2, 7, "alice", "both_wrong", "", "It takes 8 days.")
    reviews.save_verdict(1, 2, 8, "alice", "both_wrong")  # no answer: left out
    reviews.save_verdict(1, 2, 1, "bob", "tie")
    outcome = export_reviews(evals, reviews, "base", "tuned", "alice")
    assert outcome.left_out == 1
    rows = outcome.rows
    assert [row["line"] for row in rows] == [2, 5, 7]
    first = rows[0]
    assert set(first) == {
        "line",
        "slice",
        "messages",
        "verdict",
        "reviewer",
        "note",
        "baseline_output",
        "candidate_output",
    }
    assert first["slice"] == "shipping" and first["reviewer"] == "alice"
    assert first["note"] == "B lost the refund time"
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
    assert first["messages"][-1]["content"] == reference(1) == first["baseline_output"]
    assert first["candidate_output"] == B_WRONG
    assert rows[1]["messages"][-1]["content"] == reference(4)
    assert rows[2]["messages"][-1]["content"] == "It takes 8 days."
    assert len(export_reviews(evals, reviews, "base", "tuned").rows) == 4
    path = tmp_path / "out" / "reviewed.jsonl"
    assert write_jsonl(rows, path) == 3
    assert [json.loads(line) for line in path.read_text().splitlines()] == list(rows)
    assert [p.name for p in path.parent.iterdir()] == ["reviewed.jsonl"]


def test_export_command_and_default_pair(pair_workspace: Workspace, tmp_path: Path) -> None:
    import click

    @click.group()
    @click.pass_context
    def cli(ctx: click.Context) -> None:
        ctx.ensure_object(dict)
        ctx.obj["workspace"] = pair_workspace.root

    cli.add_command(review)
    evals, reviews = repositories(pair_workspace)
    assert default_pair(evals) == ("base", "tuned")
    reviews.save_verdict(1, 2, 5, "alice", "candidate")
    out = tmp_path / "reviewed.jsonl"
    result = CliRunner().invoke(
        cli,
        ["review", "export", "--baseline", "base", "--candidate", "tuned", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "Wrote 1 reviewed examples" in result.output
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["line"] == 5 and row["verdict"] == "candidate"
    bad = CliRunner().invoke(cli, ["review", "--baseline", "base"])
    assert bad.exit_code != 0 and "both --baseline and --candidate" in bad.output


def test_default_pair_needs_two_evals(tmp_path: Path) -> None:
    workspace, _ = init_workspace(tmp_path / "empty")
    evals, _ = repositories(workspace)
    with pytest.raises(InputError, match="two evals"):
        default_pair(evals)


def test_summaries_and_gates_in_one_read_equal_the_per_eval_reads(
    pair_workspace: Workspace, tmp_path: Path
) -> None:
    from core.evals.service import run_gate

    evals, _reviews = repositories(pair_workspace)
    spec = tmp_path / "gate.yaml"
    spec.write_text("scorer: exact\nmargin: 0.05\nrules:\n  - {slice: billing, kind: target}\n")
    run_gate(evals, spec, "base", "tuned")
    run_gate(evals, spec, "tuned", "base")
    run_gate(evals, spec, "base", "tuned")
    summaries, gates = evals.summaries_and_gates()
    for record in evals.list_evals():
        assert summaries[record.eval_id] == evals.score_summaries(record.eval_id)
        assert gates[record.eval_id] == evals.gate_results(record.eval_id)
    assert [g.baseline_eval_id for g in gates[2]] == [1, 1]
