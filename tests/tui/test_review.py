"""The review screen at 80×24: judge with one key, resume where the reviewer stopped, filter."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import Input, Static

from core.evals.review import ReviewItem
from store.db import Store
from store.reviews import ReviewRepository
from store.workspace import Workspace
from tests.test_review import build_pair_workspace
from tests.tui.helpers import make_app, press, settle
from tui.cli_review import review_app
from tui.screens.help import HelpScreen
from tui.screens.review import ReviewScreen, sides_text

SIZE = (80, 24)


@pytest.fixture
def pair_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("FTOD_REVIEWER", "alice")
    return build_pair_workspace(tmp_path / "project")


def reviews(workspace: Workspace) -> ReviewRepository:
    return ReviewRepository(Store.open(workspace))


def status_text(screen: ReviewScreen) -> str:
    return str(screen.query_one("#review-status", Static).render())


async def test_a_verdict_is_saved_and_the_queue_advances(pair_workspace: Workspace) -> None:
    app = make_app(pair_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = ReviewScreen("base", "tuned")
        app.push_screen(screen)
        await settle(pilot)
        assert screen.current is not None and screen.current.line == 1
        assert screen.progress_text == "0 / 8 reviewed by alice"
        assert screen.query_one("#review-sides").has_class("-narrow")  # stacked at 80 wide
        await press(pilot, "2")
        stored = reviews(pair_workspace).verdicts(1, 2)
        assert [(r.line, r.reviewer, r.verdict) for r in stored] == [(1, "alice", "candidate")]
        assert screen.current is not None and screen.current.line == 2
        assert screen.progress_text == "1 / 8 reviewed by alice"
        assert "1 / 8 reviewed by alice" in status_text(screen)
        # A note goes with the next verdict.
        await press(pilot, "e")
        assert screen.has_open_search() and screen.input.has_focus
        await pilot.press(*"too vague")
        await press(pilot, "enter", "1")
        stored = reviews(pair_workspace).verdicts(1, 2)
        assert [(r.line, r.verdict, r.note) for r in stored] == [
            (1, "candidate", ""),
            (2, "baseline", "too vague"),
        ]
        assert screen.current is not None and screen.current.line == 3

    # Reopened: resumes at the first example alice has not judged.
    again = make_app(pair_workspace)
    async with again.run_test(size=SIZE) as pilot:
        screen = ReviewScreen("base", "tuned")
        again.push_screen(screen)
        await settle(pilot)
        assert screen.current is not None and screen.current.line == 3
        assert screen.progress_text == "2 / 8 reviewed by alice"


async def test_filters_slices_and_search(pair_workspace: Workspace) -> None:
    app = make_app(pair_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = ReviewScreen("base", "tuned")
        app.push_screen(screen)
        await settle(pilot)
        assert len(screen.queue) == 8
        await press(pilot, "f")
        assert screen.queue_filter == "disagreements" and len(screen.queue) == 4
        await press(pilot, "f")
        assert screen.queue_filter == "regressions"
        assert [item.line for item in screen.queue] == [2, 4]
        assert "0 / 2 reviewed by alice" in status_text(screen)
        await press(pilot, "f")
        assert [item.line for item in screen.queue] == [5, 6]
        await press(pilot, "f")
        assert screen.queue_filter == "all" and len(screen.queue) == 8
        # Enter on the first slice row (billing) filters the queue to it.
        await press(pilot, "enter")
        assert [item.line for item in screen.queue] == [1, 3, 5, 7]
        await press(pilot, "slash")
        await pilot.press(*"cannot")
        await press(pilot, "enter")
        assert [item.line for item in screen.queue] == [7]
        assert isinstance(screen.query_one("#review-input"), Input)
        assert not screen.has_open_search()
        await press(pilot, "n")
        assert screen.current is not None and screen.current.line == 7


async def test_kappa_shows_when_two_reviewers_share_examples(pair_workspace: Workspace) -> None:
    repository = reviews(pair_workspace)
    for line, (first, second) in enumerate(
        [("baseline", "baseline"), ("candidate", "tie"), ("tie", "tie")], start=1
    ):
        repository.save_verdict(1, 2, line, "alice", first)
        repository.save_verdict(1, 2, line, "bob", second)
    app = make_app(pair_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = ReviewScreen("base", "tuned")
        app.push_screen(screen)
        await settle(pilot)
        assert "κ alice/bob" in status_text(screen)
        assert screen.current is not None and screen.current.line == 4


async def test_review_app_opens_on_the_queue(pair_workspace: Workspace) -> None:
    app = review_app(pair_workspace, "base", "tuned", None)
    app.animation_level = "none"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ReviewScreen)
        assert app.screen.current is not None


def test_sides_mark_deletions_red_and_insertions_green() -> None:
    item = ReviewItem(
        line=1,
        slice=None,
        messages=(),
        reference=None,
        baseline_output="It takes three days.",
        candidate_output="It takes five days.",
        score_a=None,
        score_b=None,
        category="unscored",
    )
    baseline, candidate = sides_text(item)
    assert baseline.plain == item.baseline_output and candidate.plain == item.candidate_output

    def styled(text: Text, style: str) -> list[str]:
        return [text.plain[span.start : span.end] for span in text.spans if span.style == style]

    assert styled(baseline, "bold red") == ["three "]
    assert styled(candidate, "bold green") == ["five "]
    assert styled(baseline, "bold green") == [] and styled(candidate, "bold red") == []


async def test_help_lists_the_review_keys(pair_workspace: Workspace) -> None:
    app = make_app(pair_workspace)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(ReviewScreen("base", "tuned"))
        await settle(pilot)
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)


async def test_escape_drops_the_note_and_a_correction_is_saved(pair_workspace: Workspace) -> None:
    app = make_app(pair_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = ReviewScreen("base", "tuned")
        app.push_screen(screen)
        await settle(pilot)
        await press(pilot, "e")
        await pilot.press(*"draft")
        await press(pilot, "escape")
        assert not screen.has_open_search() and app.screen is screen
        await press(pilot, "4", "p")
        assert screen.current is not None and screen.current.line == 1
        # Already judged: the corrected answer is saved at once with the same verdict.
        await press(pilot, "c", "ctrl+a")
        screen.input.value = "Refunds take 2 days."
        await press(pilot, "enter")
        (stored,) = reviews(pair_workspace).verdicts(1, 2, "alice")
        assert (stored.line, stored.verdict, stored.note) == (1, "both_wrong", "")
        assert stored.corrected == "Refunds take 2 days."


def store_judge_run(workspace: Workspace) -> None:
    """A judge run as `ftod judge` stores it: line 1 the candidate in both orders, line 2 the
    first-read answer each time, the rest ties."""
    from core.evals.judge import combine_orders
    from store.judges import JudgeRepository

    verdicts = [combine_orders(1, (0.1, 0.8, 0.1), (0.7, 0.2, 0.1))]
    verdicts.append(combine_orders(2, (0.8, 0.1, 0.1), (0.8, 0.1, 0.1)))
    verdicts += [combine_orders(line, (0.2, 0.2, 0.6), (0.2, 0.2, 0.6)) for line in range(3, 9)]
    JudgeRepository(Store.open(workspace)).add_run(
        baseline_eval_id=1,
        candidate_eval_id=2,
        judge_model="judge-model",
        template_sha256="0" * 64,
        settings={},
        verdicts=verdicts,
    )


async def test_judge_verdicts_are_shown_as_the_judges(pair_workspace: Workspace) -> None:
    store_judge_run(pair_workspace)
    app = make_app(pair_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = ReviewScreen("base", "tuned")
        app.push_screen(screen)
        await settle(pilot)
        head = str(screen.query_one("#review-head", Static).render())
        assert "LLM judge: candidate better in both orders" in head
        table = screen.query_one("#review-slices")
        assert "judge" in [str(c.label) for c in table.columns.values()]  # type: ignore[attr-defined]
        overall = table.get_row("\0overall")  # type: ignore[attr-defined]
        # (1 win + 0.5 · 7 ties or inconsistent) / 8
        assert str(overall[-1]) == f"{(1 + 3.5) / 8:.2f}"
        assert "judge/" not in status_text(screen)
        await press(pilot, "2")  # alice agrees with the judge on line 1
        assert "κ judge/alice" in status_text(screen)
        assert "(n=1)" in status_text(screen)
        head = str(screen.query_one("#review-head", Static).render())
        assert "inconsistent across the swap" in head and "read first" in head


async def test_s_cycles_the_scorers_both_evals_stored(tmp_path: Path) -> None:
    from core.evals.service import import_eval
    from store.datasets import DatasetRepository
    from store.evals import EvalRepository
    from tests.test_review import A_WRONG, B_WRONG, N, reference

    workspace = build_pair_workspace(tmp_path / "project")
    store = Store.open(workspace)
    folder = tmp_path / "more"
    folder.mkdir()
    for label, wrong, right in (("base2", A_WRONG, {0, 1}), ("tuned2", B_WRONG, {0, 4})):
        path = folder / f"{label}.jsonl"
        path.write_text(
            "".join(
                f'{{"line": {i + 1}, "output": "{reference(i) if i in right else wrong}"}}\n'
                for i in range(N)
            )
        )
        import_eval(
            DatasetRepository(store),
            EvalRepository(store),
            "support@1",
            path,
            label,
            ["exact", "contains:refund"],
        )
    app = make_app(workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = ReviewScreen("base2", "tuned2")
        app.push_screen(screen)
        await settle(pilot)
        assert screen.room is not None and screen.room.pair.scorer == "exact"
        await press(pilot, "n", "n")
        line = screen.current.line if screen.current is not None else None
        await press(pilot, "s")
        await settle(pilot)
        assert screen.room.pair.scorer == "contains"
        assert "contains" in status_text(screen)
        assert screen.current is not None and screen.current.line == line
        await press(pilot, "s")
        await settle(pilot)
        assert screen.room.pair.scorer == "exact"
    # The plain pair stored only exact: `s` says so instead of reloading.
    plain = make_app(workspace)
    async with plain.run_test(size=SIZE) as pilot:
        screen = ReviewScreen("base", "tuned")
        plain.push_screen(screen)
        await settle(pilot)
        await press(pilot, "s")
        assert screen.room is not None and screen.room.pair.scorer == "exact"
        assert any("share only the exact scorer" in str(n.message) for n in plain._notifications)
