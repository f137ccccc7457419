"""LLM-as-judge: reading A/B/C from next-token probabilities, combining the two swapped orders,
win rates per slice, agreement with human reviewers, and `ftod judge` end to end with the
committed 1M-parameter demo model as the judge (CPU, offline)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from core.evals.judge import (
    DEFAULT_TEMPLATE,
    JudgeTemplate,
    choice_token_ids,
    combine_orders,
    judge_agreement,
    judge_prompt,
    letter_probabilities,
    load_judge_inputs,
    load_template,
    summarize,
)
from core.evals.review import cohens_kappa
from store.db import Store
from store.errors import InputError
from store.evals import EvalRepository
from store.judges import JudgedExample, JudgeRepository
from store.reviews import ReviewRecord, ReviewRepository
from store.workspace import Workspace
from tests.test_review import build_pair_workspace
from tui.cli import main

JUDGE_MODEL = Path(__file__).resolve().parent.parent / "sample_runs" / "base_model"


# -- reading one order ---------------------------------------------------------------------------


def test_letter_probabilities_pool_every_spelling_and_renormalise() -> None:
    log_probs = {1: math.log(0.2), 2: math.log(0.1), 3: math.log(0.05), 4: math.log(0.15)}
    p_a, p_b, p_c = letter_probabilities(log_probs, {"A": (1, 2), "B": (3,), "C": (4,)})
    assert p_a == pytest.approx(0.3 / 0.5)
    assert p_b == pytest.approx(0.05 / 0.5)
    assert p_c == pytest.approx(0.15 / 0.5)


def test_combine_orders_keeps_a_verdict_only_when_both_orders_agree() -> None:
    # Order 1 shows the baseline as A; order 2 shows the candidate as A.
    candidate = combine_orders(1, (0.1, 0.8, 0.1), (0.7, 0.2, 0.1))
    assert candidate.verdict == "candidate"
    assert (candidate.baseline_first, candidate.candidate_first) == ("candidate", "candidate")
    assert candidate.p_candidate == pytest.approx(0.75)
    assert candidate.p_baseline == pytest.approx(0.15)
    assert candidate.p_tie == pytest.approx(0.1)

    baseline = combine_orders(2, (0.6, 0.3, 0.1), (0.2, 0.5, 0.3))
    assert baseline.verdict == "baseline"

    # Answer A both times: the judge followed the position, not the content.
    biased = combine_orders(3, (0.9, 0.05, 0.05), (0.9, 0.05, 0.05))
    assert biased.verdict == "inconsistent"
    assert (biased.baseline_first, biased.candidate_first) == ("baseline", "candidate")
    assert biased.p_candidate == pytest.approx(0.475)

    tie = combine_orders(4, (0.2, 0.2, 0.6), (0.3, 0.3, 0.4))
    assert tie.verdict == "tie"


def judged(line: int, verdict: str, first: str = "", second: str = "") -> JudgedExample:
    return JudgedExample(
        line=line,
        verdict=verdict,  # type: ignore[arg-type]
        baseline_first=(first or (verdict if verdict != "inconsistent" else "baseline")),  # type: ignore[arg-type]
        candidate_first=(second or (verdict if verdict != "inconsistent" else "candidate")),  # type: ignore[arg-type]
        p_candidate=0.4,
        p_baseline=0.4,
        p_tie=0.2,
    )


def test_summary_counts_win_rate_and_position_bias() -> None:
    verdicts = [
        judged(1, "candidate"),
        judged(2, "candidate"),
        judged(3, "baseline"),
        judged(4, "tie"),
        judged(5, "inconsistent", "baseline", "candidate"),  # A both times
        judged(6, "inconsistent", "candidate", "baseline"),  # B both times
        judged(7, "candidate"),
    ]
    slices = {1: "x", 2: "x", 3: "x", 4: "y", 5: "y", 6: "y", 7: None}
    summary = summarize(verdicts, slices)
    assert [s.slice for s in summary.slices] == ["x", "y"]
    x, y = summary.slices
    assert (x.n, x.candidate_wins, x.baseline_wins, x.ties, x.inconsistent) == (3, 2, 1, 0, 0)
    assert x.win_rate == pytest.approx(2 / 3)
    assert (y.n, y.ties, y.inconsistent) == (3, 1, 2)
    assert y.win_rate == pytest.approx(0.5) and y.consistency == pytest.approx(1 / 3)
    assert summary.overall.n == 7
    assert summary.overall.win_rate == pytest.approx((3 + 0.5 * 3) / 7)
    low, high = summary.overall.ci
    assert low <= summary.overall.win_rate <= high and low < high
    assert (summary.first_position_picks, summary.second_position_picks) == (1, 1)
    assert summary.as_json()["kind"] == "llm_judge"


def review(line: int, reviewer: str, verdict: str) -> ReviewRecord:
    from datetime import datetime

    return ReviewRecord(1, 2, line, reviewer, verdict, "", None, datetime(2026, 1, 1))  # type: ignore[arg-type]


def test_agreement_maps_both_wrong_and_inconsistent_to_tie() -> None:
    verdicts = [
        judged(1, "candidate"),
        judged(2, "baseline"),
        judged(3, "inconsistent"),
        judged(4, "tie"),
        judged(5, "candidate"),
    ]
    reviews = [
        review(1, "alice", "candidate"),
        review(2, "alice", "candidate"),
        review(3, "alice", "both_wrong"),
        review(4, "alice", "tie"),
        review(9, "alice", "candidate"),  # not judged: left out
        review(5, "bob", "candidate"),
    ]
    alice, bob = judge_agreement(verdicts, reviews)
    assert (alice.reviewer, alice.common, alice.agreed) == ("alice", 4, 3)
    expected = cohens_kappa(
        [("candidate", "candidate"), ("candidate", "baseline"), ("tie", "tie"), ("tie", "tie")]
    )
    assert alice.kappa == pytest.approx(expected)
    assert (bob.common, bob.agreed, bob.kappa) == (1, 1, None)


# -- the template --------------------------------------------------------------------------------


def test_template_must_show_both_answers(tmp_path: Path) -> None:
    assert load_template(None).text == DEFAULT_TEMPLATE
    lacking = tmp_path / "lacking.txt"
    lacking.write_text("Which is better? {response_a}")
    with pytest.raises(InputError, match="response_b"):
        load_template(lacking)
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("{response_a} vs {response_b} for {question}")
    with pytest.raises(InputError, match="literal braces"):
        load_template(unknown)
    braces = tmp_path / "braces.txt"
    braces.write_text('Reply {{"pick": "A"}}: {response_a} / {response_b}')
    assert load_template(braces).source == str(braces)


def test_prompt_shows_input_reference_and_both_answers_in_order(tmp_path: Path) -> None:
    workspace = build_pair_workspace(tmp_path / "project")
    inputs = load_judge_inputs(EvalRepository(Store.open(workspace)), "base", "tuned")
    example = inputs.examples[1]
    template = JudgeTemplate("{conversation}|{reference}|{response_a}|{response_b}", "test")
    text = judge_prompt(template, example, "FIRST", "SECOND")
    conversation, reference, first, second = text.split("|")
    assert "Ticket 1 bravo" in conversation and "assistant:" not in conversation
    assert reference == example.reference and (first, second) == ("FIRST", "SECOND")
    assert judge_prompt(template, example, "x" * 50, "y", max_field_chars=10).split("|")[2] == (
        "x" * 10 + " …[cut]"
    )


def test_choice_tokens_of_the_demo_judge_are_single_distinct_tokens() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(JUDGE_MODEL))
    ids = choice_token_ids(tokenizer)
    assert set(ids) == {"A", "B", "C"}
    for letter, tokens in ids.items():
        assert tokens and all(str(tokenizer.decode([t])).strip() == letter for t in tokens)
    assert not set(ids["A"]) & set(ids["B"])


# -- end to end ----------------------------------------------------------------------------------


@pytest.fixture
def pair_workspace(tmp_path: Path) -> Workspace:
    return build_pair_workspace(tmp_path / "project")


def run_cli(workspace: Workspace, *args: str) -> Result:
    return CliRunner().invoke(
        main,
        ["--workspace", str(workspace.root), *args],
        catch_exceptions=False,
    )


def judge(workspace: Workspace, baseline: str, candidate: str, *extra: str) -> Result:
    return run_cli(
        workspace,
        *("judge", "--baseline", baseline, "--candidate", candidate),
        *("--model", str(JUDGE_MODEL), "--batch-size", "3", "--json", *extra),
    )


def stored_runs(workspace: Workspace, baseline: int, candidate: int) -> Any:
    return JudgeRepository(Store.open(workspace)).runs(baseline, candidate)


def test_judge_asks_both_orders_and_stores_every_example(pair_workspace: Workspace) -> None:
    result = judge(pair_workspace, "base", "tuned")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["kind"] == "llm_judge"
    assert payload["judge"]["examples"] == 8 and payload["overall"]["n"] == 8
    assert [s["slice"] for s in payload["slices"]] == ["billing", "shipping"]
    assert payload["judge"]["settings"]["template"] == "default"
    (run,) = stored_runs(pair_workspace, 1, 2)
    verdicts = JudgeRepository(Store.open(pair_workspace)).verdicts(run.judge_id)
    assert [v.line for v in verdicts] == list(range(1, 9))
    for verdict in verdicts:
        assert verdict.p_candidate + verdict.p_baseline + verdict.p_tie == pytest.approx(1.0)
        consistent = verdict.baseline_first == verdict.candidate_first
        assert (verdict.verdict == "inconsistent") != consistent
    counts = payload["overall"]
    assert (
        counts["candidate_wins"] + counts["baseline_wins"] + counts["ties"] + counts["inconsistent"]
    ) == 8
    # `evals show` of the candidate lists the run, marked as the judge's.
    shown = json.loads(run_cli(pair_workspace, "evals", "show", "tuned", "--json").stdout)
    (listed,) = shown["judge_runs"]
    assert listed["kind"] == "llm_judge" and listed["baseline"] == "base"
    assert listed["overall"] == counts
    assert (
        json.loads(run_cli(pair_workspace, "evals", "show", "base", "--json").stdout)["judge_runs"]
        == []
    )
    text = run_cli(pair_workspace, "evals", "show", "tuned").stdout
    assert "LLM judge 1" in text and "not human verdicts" in text


def test_stored_readings_match_an_unbatched_forward_pass(pair_workspace: Workspace) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert judge(pair_workspace, "base", "tuned").exit_code == 0
    (run,) = stored_runs(pair_workspace, 1, 2)
    stored = {v.line: v for v in JudgeRepository(Store.open(pair_workspace)).verdicts(run.judge_id)}
    tokenizer = AutoTokenizer.from_pretrained(str(JUDGE_MODEL))
    model = AutoModelForCausalLM.from_pretrained(str(JUDGE_MODEL), dtype=torch.float32)
    model.eval()  # type: ignore[no-untyped-call]
    ids = choice_token_ids(tokenizer)
    inputs = load_judge_inputs(EvalRepository(Store.open(pair_workspace)), "base", "tuned")
    template = load_template(None)
    for example in inputs.examples[:3]:
        readings = []
        a, b = inputs.baseline_outputs[example.line], inputs.candidate_outputs[example.line]
        for first, second in ((a, b), (b, a)):
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": judge_prompt(template, example, first, second)}],
                add_generation_prompt=True,
                tokenize=False,
            )
            encoded = tokenizer(text, add_special_tokens=False, return_tensors="pt")
            with torch.inference_mode():
                logits = model(**encoded).logits[0, -1].float()
            log_probs = dict(enumerate(torch.log_softmax(logits, dim=-1).tolist()))
            readings.append(letter_probabilities(log_probs, ids))
        expected = combine_orders(example.line, readings[0], readings[1])
        got = stored[example.line]
        assert got.verdict == expected.verdict
        assert got.p_candidate == pytest.approx(expected.p_candidate, abs=1e-4)
        assert got.p_tie == pytest.approx(expected.p_tie, abs=1e-4)


def test_swapping_the_roles_mirrors_every_verdict(pair_workspace: Workspace) -> None:
    # The judge sees the same two prompts per example either way, so naming the tuned eval
    # the baseline must mirror each verdict: position swapping is really done.
    assert judge(pair_workspace, "base", "tuned").exit_code == 0
    assert judge(pair_workspace, "tuned", "base").exit_code == 0
    repository = JudgeRepository(Store.open(pair_workspace))
    forward = repository.verdicts(stored_runs(pair_workspace, 1, 2)[0].judge_id)
    backward = {
        v.line: v for v in repository.verdicts(stored_runs(pair_workspace, 2, 1)[0].judge_id)
    }
    mirror = {"candidate": "baseline", "baseline": "candidate", "tie": "tie"}
    for verdict in forward:
        other = backward[verdict.line]
        assert other.verdict == mirror.get(verdict.verdict, "inconsistent")
        assert other.baseline_first == mirror[verdict.candidate_first]
        assert other.p_candidate == pytest.approx(verdict.p_baseline, abs=1e-5)


def test_show_reports_agreement_with_reviewers(pair_workspace: Workspace) -> None:
    assert judge(pair_workspace, "base", "tuned").exit_code == 0
    (run,) = stored_runs(pair_workspace, 1, 2)
    verdicts = JudgeRepository(Store.open(pair_workspace)).verdicts(run.judge_id)
    reviews = ReviewRepository(Store.open(pair_workspace))
    for verdict in verdicts[:4]:
        reviews.save_verdict(1, 2, verdict.line, "alice", "candidate")
    shown = run_cli(
        pair_workspace, "judge", "show", "--baseline", "base", "--candidate", "tuned", "--json"
    )
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.stdout)
    (alice,) = payload["agreement"]
    expected_agreed = sum(1 for v in verdicts[:4] if v.verdict == "candidate")
    assert (alice["reviewer"], alice["common"], alice["agreed"]) == ("alice", 4, expected_agreed)
    text = run_cli(pair_workspace, "judge", "show", "--baseline", "base", "--candidate", "tuned")
    assert "judge scores, not human verdicts" in text.stdout
    assert f"judge vs alice: agree {expected_agreed}/4" in text.stdout


def test_bad_input_exits_2_and_stores_nothing(pair_workspace: Workspace, tmp_path: Path) -> None:
    same = judge(pair_workspace, "base", "base")
    assert same.exit_code == 2 and "same eval" in same.output
    missing = run_cli(
        pair_workspace,
        *("judge", "run", "--baseline", "base", "--candidate", "tuned"),
        *("--model", str(tmp_path / "nowhere")),
    )
    assert missing.exit_code == 2 and "no such folder" in missing.output
    template = tmp_path / "one-answer.txt"
    template.write_text("Is this good? {response_a}")
    lacking = judge(pair_workspace, "base", "tuned", "--template", str(template))
    assert lacking.exit_code == 2 and "response_b" in lacking.output
    too_long = judge(pair_workspace, "base", "tuned", "--max-field-chars", "100000")
    # The references are short, so everything fits; a long template does not.
    assert too_long.exit_code == 0
    huge = tmp_path / "huge.txt"
    huge.write_text("Read this carefully. " * 400 + "{response_a} {response_b}")
    over = judge(pair_workspace, "tuned", "base", "--template", str(huge))
    assert over.exit_code == 2 and "over the judge model's context" in over.output
    assert stored_runs(pair_workspace, 2, 1) == []
    nothing = run_cli(pair_workspace, "judge", "show", "--baseline", "tuned", "--candidate", "base")
    assert nothing.exit_code != 0 and "no judge run" in nothing.output


def test_review_room_carries_the_judge_and_scores_what_the_gate_judged(
    pair_workspace: Workspace, tmp_path: Path
) -> None:
    from core.evals.review import load_review_room
    from core.evals.service import run_gate

    store = Store.open(pair_workspace)
    evals, reviews, judges = EvalRepository(store), ReviewRepository(store), JudgeRepository(store)
    room = load_review_room(evals, reviews, "base", "tuned", reviewer="alice", judges=judges)
    assert room.judge is None and room.pair.scorer == "exact"

    assert judge(pair_workspace, "base", "tuned").exit_code == 0
    spec = tmp_path / "gate.yaml"
    spec.write_text(
        "scorer: 'contains:refund'\nmargin: 0.05\nrules:\n  - {slice: billing, kind: target}\n"
    )
    run_gate(evals, spec, "base", "tuned")
    reviews.save_verdict(1, 2, 1, "alice", "both_wrong")
    room = load_review_room(evals, reviews, "base", "tuned", reviewer="alice", judges=judges)
    assert room.pair.scorer == "contains"
    assert room.judge is not None
    assert sorted(room.judge.verdicts) == [item.line for item in room.pair.items]
    (alice,) = room.judge.agreement
    assert alice.common == 1 and alice.agreed == int(
        room.judge.verdicts[1].verdict in ("tie", "inconsistent")
    )
    named = load_review_room(evals, reviews, "base", "tuned", scorer="exact", judges=judges)
    assert named.pair.scorer == "exact"


def test_a_reader_that_goes_away_is_not_an_error(pair_workspace: Workspace) -> None:
    # `ftod judge show … | head -1`: the pipe closes before ftod writes its lines.
    import subprocess
    import sys

    from tests.tui.test_review import store_judge_run

    store_judge_run(pair_workspace)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tui.cli", "--workspace", str(pair_workspace.root)),
            *("judge", "show", "--baseline", "base", "--candidate", "tuned"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1, errors  # click's and rich's code for a closed pipe
    assert "Internal error" not in errors and "Traceback" not in errors


class Crash(Exception):
    pass


def test_a_crash_mid_judge_keeps_its_readings_and_resume_judges_only_the_rest(
    pair_workspace: Workspace, tmp_path: Path
) -> None:
    from core.evals.generate import _meta_path
    from core.evals.judge import judge_partial_path, read_judge_checkpoint, run_judge

    store = Store.open(pair_workspace)
    evals, judges = EvalRepository(store), JudgeRepository(store)

    def crash_after_two_batches(done: int, total: int) -> None:
        if done >= 4:
            raise Crash

    with pytest.raises(Crash):
        run_judge(
            evals,
            judges,
            "base",
            "tuned",
            model=str(JUDGE_MODEL),
            batch_size=2,
            progress=crash_after_two_batches,
            workspace=pair_workspace,
        )
    partial = judge_partial_path(pair_workspace, 1, 2)
    assert len(read_judge_checkpoint(partial)) == 4
    assert stored_runs(pair_workspace, 1, 2) == []  # nothing half-stored
    with partial.open("a") as handle:
        handle.write('{"line": 7, "order": 1, "p": [0.2')  # torn by the crash

    refused = judge(pair_workspace, "base", "tuned")
    assert refused.exit_code == 2 and "--resume" in refused.output
    template = tmp_path / "other.txt"
    template.write_text("Better? {response_a} or {response_b}")
    other = judge(pair_workspace, "base", "tuned", "--resume", "--template", str(template))
    assert other.exit_code == 2 and "other settings" in other.output

    seen: list[tuple[int, int]] = []
    outcome = run_judge(
        evals,
        judges,
        "base",
        "tuned",
        model=str(JUDGE_MODEL),
        batch_size=2,
        progress=lambda done, total: seen.append((done, total)),
        workspace=pair_workspace,
        resume=True,
    )
    assert seen[0] == (4, 16) and seen[-1] == (16, 16)
    assert len(seen) == 1 + 6  # the 12 missing readings in batches of 2
    assert not partial.exists() and not _meta_path(partial).exists()
    resumed = judges.verdicts(outcome.run.judge_id)
    fresh = run_judge(evals, judges, "base", "tuned", model=str(JUDGE_MODEL), batch_size=2)
    for got, want in zip(resumed, judges.verdicts(fresh.run.judge_id), strict=True):
        assert (got.line, got.verdict) == (want.line, want.verdict)
        assert got.p_candidate == pytest.approx(want.p_candidate, abs=1e-5)


# -- unbounded and unsafe inputs (issue #10 §6, §7) ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{response_a} {response_b} {response_a.x}", r"\(\{response_a\.x\}\)"),
        ("{response_a.__class__} {response_a} {response_b}", r"\{response_a\.__class__\}"),
        ("{response_a[0]} {response_a} {response_b}", r"\{response_a\[0\]\}"),
        ("{response_a:>999999999} {response_b}", "without conversions or format specs"),
        ("{response_a!r} {response_b}", r"has \{response_a!r\}"),
        ("{response_a} {response_b} {}", "a field other than"),
        ("{response_a} {response_b} {", "unbalanced brace"),
        ("{response_a} {{response_b}}", "lacks {response_b}"),
    ],
)
def test_template_fields_are_plain_names(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "template.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_template(path)


def test_template_must_be_a_small_regular_file(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "template.fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.txt"
    big.write_text("{response_a} {response_b}" + " " * (1 << 20))
    for path, message in [
        (fifo, "not a regular file"),
        (tmp_path, "not a regular file"),
        (Path("/dev/zero"), "not a regular file"),
        (big, "larger than the 1,048,576-byte limit"),
    ]:
        with pytest.raises(InputError, match=message):
            load_template(path)


def test_a_damaged_template_or_judge_model_is_refused_by_the_cli(
    pair_workspace: Workspace, tmp_path: Path
) -> None:
    import shutil

    attribute = tmp_path / "attribute.txt"
    attribute.write_text("{response_a.__class__} {response_a} {response_b}")
    refused = judge(pair_workspace, "base", "tuned", "--template", str(attribute))
    assert refused.exit_code == 2 and "__class__" in refused.output
    for name in ("model.safetensors", "tokenizer.json"):
        damaged = tmp_path / f"damaged-{name}"
        shutil.copytree(JUDGE_MODEL, damaged)
        whole = (damaged / name).read_bytes()
        (damaged / name).write_bytes(whole[: len(whole) // 2])
        result = run_cli(
            pair_workspace,
            *("judge", "--baseline", "base", "--candidate", "tuned", "--model", str(damaged)),
        )
        assert result.exit_code == 2, result.output
        assert name in result.output and "incomplete or damaged" in result.output
    assert stored_runs(pair_workspace, 1, 2) == []
