"""The decision desk: each symptom's route, the minimum proof read from real workspaces built
with the CLI, the three verdicts, decision records and their versions, and the CLI contract."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from core.decide.checklist import ITEM_IDS, ChecklistItem, Status
from core.decide.decision import DecideRequest, Repositories, decide, decide_from_store
from core.decide.diagnosis import CACHEABLE_PREFIX_TOKENS, diagnose, measure_prefix
from core.decide.symptoms import SYMPTOM_IDS, SYMPTOMS
from core.settings import load_settings
from store.datasets import DatasetRepository
from store.db import Store
from store.decisions import DecisionRepository
from store.evals import EvalRepository
from store.prompts import FewShot, PromptRecord, PromptRepository
from tests.conftest import write_jsonl
from tui.cli import main

SLICES = ("tone", "general")
N_ROWS = 300
GATE_SPEC = """\
scorer: exact
rules:
  - {slice: tone, kind: target, margin: 0.05}
  - {slice: general, kind: regression, margin: 0.1}
"""


@dataclass(frozen=True)
class Audit:
    """A knowledge audit as `core.checks.volatile_fact` hands it over."""

    assistant_turns: int
    turns_with_volatile_facts: int

    @property
    def share(self) -> float:
        return self.turns_with_volatile_facts / self.assistant_turns

    def as_json(self) -> dict[str, Any]:
        return {
            "assistant_turns": self.assistant_turns,
            "turns_with_volatile_facts": self.turns_with_volatile_facts,
            "share": self.share,
            "by_kind": {},
            "drift": [],
        }


def _no_nan(text: str) -> Any:
    raise AssertionError(f"non-strict JSON constant {text}")


def strict(text: str) -> Any:
    return json.loads(text, parse_constant=_no_nan)


def open_store(root: Path) -> Store:
    from store.workspace import find_workspace

    return Store.open(find_workspace(root))


def invoke(root: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--workspace", str(root), *args])


def reference(i: int) -> str:
    return f"Answer number {i}: see the help centre."


def row(i: int) -> dict[str, Any]:
    # Distinct wording per row, so no near-duplicates are grouped.
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    user = f"Ticket {i}: {words[i % 8]} {words[(i * 3) % 8]} {i * 7919} {i**3} please help"
    return {
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": reference(i)},
        ],
        "metadata": {"slice": SLICES[i % 2], "id": f"t-{i}"},
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    assert invoke(root, "init", str(root)).exit_code == 0
    return root


def add_clean_data(root: Path, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "support.jsonl", [row(i) for i in range(N_ROWS)])
    assert invoke(root, "data", "add", str(path), "--name", "support").exit_code == 0, "add"
    result = invoke(root, "data", "split", "support@1", "--json")
    assert result.exit_code == 0, result.output


def held_out_lines(root: Path) -> list[int]:
    store = open_store(root)
    repository = EvalRepository(store)
    version = DatasetRepository(store).version("support@1")
    split_id = DatasetRepository(store).splits(version.version_id)[-1].split_id
    return [r.line for r in repository.eval_examples(version.version_id, split_id, "test")]


def import_outputs(
    root: Path, tmp_path: Path, label: str, wrong_every: int | None, *, prompt: str | None = None
) -> None:
    """An eval on support@1:test whose outputs are right except every `wrong_every`-th line."""
    lines = held_out_lines(root)
    outputs = [
        {
            "line": line,
            "output": "No idea." if wrong_every and n % wrong_every == 0 else reference(line - 1),
        }
        for n, line in enumerate(lines)
    ]
    path = write_jsonl(tmp_path / f"{label}.jsonl", outputs)
    if prompt is None:
        result = invoke(
            root,
            "eval",
            "import",
            "--data",
            "support@1:test",
            "--outputs",
            str(path),
            "--label",
            label,
            "--model",
            "base-model",
        )
        assert result.exit_code == 0, result.output
        return
    from core.evals.service import import_eval

    store = open_store(root)
    import_eval(
        DatasetRepository(store),
        EvalRepository(store),
        "support@1:test",
        path,
        label,
        model="base-model",
        prompt=prompt,
    )


def repositories(root: Path) -> Repositories:
    store = open_store(root)
    return Repositories(
        DatasetRepository(store),
        EvalRepository(store),
        PromptRepository(store),
        DecisionRepository(store),
    )


def items(*statuses: tuple[str, Status]) -> tuple[ChecklistItem, ...]:
    given = dict(statuses)
    return tuple(ChecklistItem(i, given.get(i, "missing"), {}) for i in ITEM_IDS)


def all_pass() -> tuple[ChecklistItem, ...]:
    return tuple(ChecklistItem(i, "pass", {}) for i in ITEM_IDS)


# -- diagnosis -------------------------------------------------------------------------------

EXPECTED_ROUTES = {
    "ignores_instructions": ("prompt", "clearer prompt"),
    "missing_facts": ("retrieval", "teaches behaviour, not facts"),
    "stale_facts": ("retrieval", "freeze"),
    "private_docs": ("retrieval", "your documents"),
    "needs_actions": ("tools", "call a tool"),
    "format": ("not_yet", "proof is not complete"),
    "tone": ("not_yet", "proof is not complete"),
    "domain_phrasing": ("not_yet", "proof is not complete"),
    "classification_boundary": ("not_yet", "proof is not complete"),
    "tool_discipline": ("not_yet", "proof is not complete"),
    "verbose": ("prompt", "length instruction"),
    "fails_sometimes": ("evaluate_first", "sliced eval set"),
    "too_expensive": ("distill", "break-even is unknown"),
    "too_slow": ("distill", "break-even is unknown"),
}


def test_the_vocabulary_is_the_contract() -> None:
    assert tuple(EXPECTED_ROUTES) == SYMPTOM_IDS
    assert all(symptom.label and symptom.explanation for symptom in SYMPTOMS)


@pytest.mark.parametrize("symptom", SYMPTOM_IDS)
def test_each_symptom_routes_with_its_reason_when_nothing_is_proven(symptom: str) -> None:
    (route,) = diagnose([symptom], items())
    expected_route, words = EXPECTED_ROUTES[symptom]
    assert route.route == expected_route
    assert words in route.reason
    assert route.next_step


@pytest.mark.parametrize(
    "symptom", ["format", "tone", "domain_phrasing", "classification_boundary", "verbose"]
)
def test_behaviour_is_a_fine_tune_only_when_every_item_passes(symptom: str) -> None:
    (route,) = diagnose([symptom], all_pass())
    assert route.route == "fine_tune"
    one_open = tuple(
        ChecklistItem(item.id, "missing" if item.id == "gate_spec" else "pass", {})
        for item in all_pass()
    )
    (route,) = diagnose([symptom], one_open)
    assert route.route != "fine_tune"
    assert "gate_spec" in route.reason


def test_knowledge_symptoms_never_become_a_fine_tune_even_with_the_proof() -> None:
    routes = diagnose(["missing_facts", "private_docs", "needs_actions"], all_pass())
    assert [route.route for route in routes] == ["retrieval", "retrieval", "tools"]


def test_a_long_shared_prefix_routes_cost_to_prompt_caching() -> None:
    long = PromptRecord(
        "support",
        1,
        "x" * (4 * CACHEABLE_PREFIX_TOKENS - 400),
        (FewShot("u" * 200, "a" * 200),),
        256,
        0.0,
        (),
        "sha",
        __import__("datetime").datetime(2026, 1, 1),
    )
    prefix = measure_prefix(long)
    assert prefix.tokens == CACHEABLE_PREFIX_TOKENS
    (route,) = diagnose(["too_expensive"], items(), prefix=prefix)
    assert route.route == "prompt_caching"
    assert "characters / 4" in route.reason
    short = measure_prefix(
        PromptRecord("s", 1, "Be brief.", (), 256, 0.0, (), "sha", long.created_at)
    )
    (route,) = diagnose(["too_slow"], items(), prefix=short)
    assert route.route == "distill"
    assert "below the 1024" in route.reason


def test_cost_routes_to_fine_tune_only_when_the_break_even_is_reached() -> None:
    (route,) = diagnose(["too_expensive"], items(), cost={"break_even_reached": True})
    assert route.route == "fine_tune"
    (route,) = diagnose(["too_expensive"], items(), cost={"break_even": {"reached": False}})
    assert route.route == "distill"
    assert "not reached" in route.reason
    # A fine-tune for cost still waits on the proof.
    decision = decide(["too_expensive"], items(), cost={"break_even_reached": True})
    assert decision.verdict == "not_yet"


def test_evaluate_first_means_not_yet_and_cheaper_routes_mean_dont() -> None:
    assert decide(["fails_sometimes"], items()).verdict == "not_yet"
    decision = decide(["missing_facts", "needs_actions"], items())
    assert decision.verdict == "dont_fine_tune"
    assert "retrieval for missing_facts" in decision.summary


# -- the verdicts from real workspaces -------------------------------------------------------


def test_a_dataset_with_errors_is_not_yet_with_the_command_that_fixes_it(
    project: Path, tmp_path: Path
) -> None:
    rows: list[Any] = [row(i) for i in range(40)]
    rows[5] = '{"messages": [broken'
    rows[9] = '{"messages": "not a list"}'
    path = write_jsonl(tmp_path / "dirty.jsonl", rows)
    assert invoke(project, "data", "add", str(path), "--name", "dirty").exit_code == 0
    result = invoke(project, "decide", "--symptom", "tone", "--dataset", "dirty@1", "--json")
    assert result.exit_code == 0, result.output
    payload = strict(result.stdout)
    assert list(payload)[:5] == ["verdict", "routes", "checklist", "knowledge_audit", "cost"]
    assert payload["verdict"] == "not_yet"
    checklist = {item["id"]: item for item in payload["checklist"]}
    assert [item["id"] for item in payload["checklist"]] == list(ITEM_IDS)
    clean = checklist["data_clean"]
    assert clean["status"] == "fail"
    by_check = {entry["check"]: entry for entry in clean["evidence"]["errors_by_check"]}
    assert by_check["invalid_json"]["example_lines"] == [6]
    assert 10 in by_check["invalid_schema"]["example_lines"]
    enough = checklist["enough_examples"]["evidence"]
    assert enough["valid"] == 38 and enough["clean"] == 38 and enough["threshold"] == 200
    assert checklist["enough_examples"]["status"] == "fail"
    steps = {step["item"]: step["command"] for step in payload["next_steps"]}
    assert "ftod data add FIXED.jsonl" in steps["data_clean"]
    # The CLI audits the data it would train on (no volatile facts in these rows); no
    # volume was stated, so nothing is priced.
    assert checklist["knowledge_audit"]["status"] == "pass"
    assert checklist["knowledge_audit"]["evidence"]["assistant_turns"] > 0
    assert payload["knowledge_audit"]["share"] == 0.0
    assert payload["cost"] is None
    # Without NAME nothing is stored.
    assert strict(invoke(project, "decide", "list", "--json").stdout) == []


def test_a_baseline_that_passes_means_the_prompt_is_enough(project: Path, tmp_path: Path) -> None:
    add_clean_data(project, tmp_path)
    import_outputs(project, tmp_path, "baseline", wrong_every=20)
    result = invoke(
        project,
        "decide",
        "--symptom",
        "tone",
        "--dataset",
        "support@1",
        "--split",
        "train",
        "--baseline",
        "baseline",
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = strict(result.stdout)
    assert payload["verdict"] == "dont_fine_tune"
    assert payload["routes"][0]["route"] == "prompt"
    assert "the prompt is enough" in payload["routes"][0]["reason"]
    checklist = {item["id"]: item for item in payload["checklist"]}
    short = checklist["baseline_falls_short"]
    assert short["status"] == "fail"
    lines = held_out_lines(project)
    tone_lines = [line for line in lines if (line - 1) % 2 == 0]
    expected_failures = [line for n, line in enumerate(lines) if n % 20 == 0]
    assert short["evidence"]["slices"] == ["tone"]
    assert short["evidence"]["cases"] == len(tone_lines)
    assert short["evidence"]["failures"] == len(set(expected_failures) & set(tone_lines))
    assert short["evidence"]["pass_share"] >= 0.9
    enough = checklist["enough_examples"]
    assert enough["status"] == "pass"
    assert enough["evidence"]["clean"] == enough["evidence"]["valid"] >= 200
    assert checklist["eval_held_out"]["status"] == "pass"
    assert checklist["data_clean"]["status"] == "pass"
    # An imported eval that names no prompt cannot stand for "base model + best prompt".
    assert checklist["baseline_eval"]["status"] == "fail"


def test_every_item_passing_is_a_fine_tune_and_a_volatile_audit_stops_it(
    project: Path, tmp_path: Path
) -> None:
    add_clean_data(project, tmp_path)
    prompt_file = tmp_path / "prompt.yaml"
    prompt_file.write_text("system: You are a friendly support agent.\n")
    assert invoke(project, "prompt", "add", "support", "--file", str(prompt_file)).exit_code == 0
    import_outputs(project, tmp_path, "baseline", wrong_every=2, prompt="support@1")
    gate = tmp_path / "gate.yaml"
    gate.write_text(GATE_SPEC)
    from core.evals.gate import load_gate_spec

    request = DecideRequest(
        symptoms=("tone",),
        dataset="support@1",
        split="train",
        eval_set="support@1:test",
        baseline="baseline",
        gate_spec=load_gate_spec(gate).as_json(),
        requests_per_day=5000,
        stable=True,
    )
    settings = load_settings(project / ".ftod")
    decision = decide_from_store(repositories(project), request, settings, audit=Audit(200, 4))
    assert {item.id: item.status for item in decision.checklist} == dict.fromkeys(ITEM_IDS, "pass")
    assert decision.verdict == "fine_tune"
    assert decision.as_json()["knowledge_audit"]["share"] == 0.02
    assert decision.prefix is not None and decision.prefix.prompt == "support@1"

    frozen = decide_from_store(repositories(project), request, settings, audit=Audit(200, 40))
    audit = next(item for item in frozen.checklist if item.id == "knowledge_audit")
    assert audit.status == "fail" and "freeze" in audit.evidence["reason"]
    assert frozen.verdict == "not_yet"
    assert [step["item"] for step in frozen.next_steps] == ["knowledge_audit"]


def test_thresholds_come_from_the_workspace_settings(project: Path, tmp_path: Path) -> None:
    rows = [row(i) for i in range(60)]
    path = write_jsonl(tmp_path / "small.jsonl", rows)
    assert invoke(project, "data", "add", str(path), "--name", "small").exit_code == 0
    (project / ".ftod" / "settings.toml").write_text("[decide]\nenough_examples = 50\n")
    payload = strict(
        invoke(project, "decide", "--symptom", "format", "--dataset", "small", "--json").stdout
    )
    enough = next(item for item in payload["checklist"] if item["id"] == "enough_examples")
    assert enough["status"] == "pass"
    assert enough["evidence"]["threshold"] == 50
    assert enough["evidence"]["threshold_source"] == "settings"
    assumption = next(a for a in payload["assumptions"] if a["name"] == "decide.enough_examples")
    assert assumption == {**assumption, "value": 50, "source": "settings"}


# -- records and the CLI contract ------------------------------------------------------------


def test_deciding_again_makes_a_new_version_that_says_what_changed(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTOD_REVIEWER", "ana")
    add_clean_data(project, tmp_path)
    args = ("decide", "support-tone", "--symptom", "tone", "--dataset", "support@1")
    first = invoke(project, *args, "--requests-per-day", "100", "--stable", "--json")
    assert first.exit_code == 0, first.output
    assert strict(first.stdout)["record"] == {"name": "support-tone", "version": 1}
    second = invoke(project, *args, "--requests-per-day", "100", "--unstable")
    assert second.exit_code == 0, second.output
    assert "support-tone@2" in second.output

    listed = strict(invoke(project, "decide", "list", "--json").stdout)
    assert [(d["name"], d["version"], d["versions"]) for d in listed] == [("support-tone", 2, 2)]
    assert listed[0]["verdict"] == "dont_fine_tune" and listed[0]["reviewer"] == "ana"

    shown = strict(invoke(project, "decide", "show", "support-tone", "--json").stdout)
    assert shown["version"] == 2 and shown["previous_version"] == 1
    assert {"field": "verdict", "from": "not_yet", "to": "dont_fine_tune"} in shown["changes"]
    assert {"field": "checklist.value", "from": "pass", "to": "fail"} in shown["changes"]
    assert shown["answers"] == {"requests_per_day": 100.0, "stable": False}
    assert shown["links"]["dataset"] == "support@1"
    first_shown = strict(invoke(project, "decide", "show", "support-tone@1", "--json").stdout)
    assert first_shown["verdict"] == "not_yet" and first_shown["changes"] == []

    page = invoke(project, "decide", "show", "support-tone", "--markdown")
    assert page.exit_code == 0
    assert page.output.startswith("# Decision: support-tone (version 2)\n")
    assert "| tone | prompt |" in page.output
    assert "| value | fail |" in page.output
    assert "## Changed since version 1" in page.output
    assert "- verdict: not_yet → dont_fine_tune" in page.output
    assert "| decide.enough_examples | 200 | default |" in page.output


def test_refresh_brings_the_gate_verdict_into_the_record(project: Path, tmp_path: Path) -> None:
    add_clean_data(project, tmp_path)
    import_outputs(project, tmp_path, "baseline", wrong_every=2)
    gate = tmp_path / "gate.yaml"
    gate.write_text(GATE_SPEC)
    made = invoke(
        project,
        "decide",
        "q",
        "--symptom",
        "tone",
        "--baseline",
        "baseline",
        "--gate-spec",
        str(gate),
    )
    assert made.exit_code == 0, made.output
    import_outputs(project, tmp_path, "candidate", wrong_every=None)
    gated = invoke(
        project, "gate", "--spec", str(gate), "--baseline", "baseline", "--candidate", "candidate"
    )
    assert gated.exit_code == 0, gated.output
    gate.unlink()  # the record keeps the spec it was decided with
    refreshed = invoke(project, "decide", "q", "--refresh", "--json")
    assert refreshed.exit_code == 0, refreshed.output
    payload = strict(refreshed.stdout)
    assert payload["record"]["version"] == 2
    # Training data taken from the baseline's version means its train split, said as such.
    held_out = next(item for item in payload["checklist"] if item["id"] == "eval_held_out")
    assert held_out["status"] == "pass"
    assert held_out["evidence"]["training"]["split"] == "train"
    assert {"name": "training_split", "value": "train", "source": "default"}.items() <= next(
        a for a in payload["assumptions"] if a["name"] == "training_split"
    ).items()
    assert payload["gate"]["passed"] is True
    assert payload["gate"]["verdict"] == "beat base + best prompt on task, held on regression: ship"
    candidate = EvalRepository(open_store(project)).eval_by_ref("candidate")
    assert payload["links"]["candidate_eval_id"] == candidate.eval_id
    record = DecisionRepository(open_store(project)).versions("q")[-1]
    assert record.candidate_eval_id == candidate.eval_id
    shown = strict(invoke(project, "decide", "show", "q", "--json").stdout)
    assert any(change["field"] == "gate" for change in shown["changes"])
    assert invoke(project, "decide", "q", "--refresh", "--symptom", "tone").exit_code == 2


def test_an_unknown_symptom_is_a_usage_error_listing_the_known_ones(project: Path) -> None:
    result = invoke(project, "decide", "q", "--symptom", "tone", "--symptom", "sad", "--json")
    assert result.exit_code == 2
    error = strict(result.stdout)["error"]
    assert "'sad'" in error["message"]
    assert all(symptom in error["message"] for symptom in SYMPTOM_IDS)
    assert invoke(project, "decide").exit_code == 2
    assert invoke(project, "decide", "--symptom", "tone", "--dataset", "nope").exit_code == 2
    assert invoke(project, "decide", "--symptom", "tone", "--split", "dev").exit_code == 2
    bad = invoke(project, "decide", "--symptom", "tone", "--requests-per-day", "nan")
    assert bad.exit_code == 2
    assert invoke(project, "decide", "show", "never").exit_code == 2
    assert strict(invoke(project, "decide", "list", "--json").stdout) == []


def test_an_eval_set_that_shares_rows_with_the_training_data_is_not_held_out(
    project: Path, tmp_path: Path
) -> None:
    add_clean_data(project, tmp_path)
    store = open_store(project)
    version = DatasetRepository(store).version("support@1")
    split_id = DatasetRepository(store).splits(version.version_id)[-1].split_id
    examples = EvalRepository(store).eval_examples
    train = [r.line for r in examples(version.version_id, split_id, "train")]
    test = held_out_lines(project)
    # A separately added eval file: 20 new rows, then copies of two train rows and a test row.
    copies = [train[0], train[1], test[0]]
    eval_rows = [row(i) for i in range(N_ROWS, N_ROWS + 20)] + [row(line - 1) for line in copies]
    path = write_jsonl(tmp_path / "eval.jsonl", eval_rows)
    assert invoke(project, "data", "add", str(path), "--name", "evalset").exit_code == 0

    def held_out(*args: str) -> dict[str, Any]:
        result = invoke(project, "decide", "--symptom", "format", "--json", *args)
        assert result.exit_code == 0, result.output
        payload = strict(result.stdout)
        return next(item for item in payload["checklist"] if item["id"] == "eval_held_out")

    whole = held_out("--dataset", "support@1", "--eval-set", "support@1:test")
    assert whole["status"] == "fail" and "--split train" in whole["evidence"]["reason"]
    copied = held_out("--dataset", "support@1", "--eval-set", "evalset@1")
    assert copied["status"] == "fail"
    assert copied["evidence"]["rows_also_in_training"] == 3
    assert copied["evidence"]["leakage_example_lines"] == [21, 22, 23]
    # Against the train split, the copy of a test row is no leak.
    copied = held_out("--dataset", "support@1", "--split", "train", "--eval-set", "evalset@1")
    assert copied["evidence"]["rows_also_in_training"] == 2
    assert copied["evidence"]["leakage_example_lines"] == [21, 22]
    itself = held_out("--dataset", "support@1", "--eval-set", "support@1")
    assert itself["status"] == "fail"
    assert "training data itself" in itself["evidence"]["reason"]
    split = held_out("--dataset", "support@1", "--split", "train", "--eval-set", "support@1:test")
    assert split["status"] == "pass"


def test_unusable_inputs_exit_2_and_store_nothing(project: Path, tmp_path: Path) -> None:
    broken = tmp_path / "gate.yaml"
    broken.write_text("rules: [unclosed\n")
    no_regression = tmp_path / "target-only.yaml"
    no_regression.write_text("rules:\n  - {slice: tone, kind: target}\n")
    for args in (
        ("q", "--symptom", "tone", "--gate-spec", str(broken)),
        ("q", "--symptom", "tone", "--gate-spec", str(tmp_path / "missing.yaml")),
        ("q", "--symptom", "tone", "--baseline", "nope"),
        ("q", "--symptom", "tone", "--split", "train"),
        ("two words", "--symptom", "tone"),
        ("q", "--refresh"),
    ):
        result = invoke(project, "decide", *args)
        assert result.exit_code == 2, (args, result.output)
    assert strict(invoke(project, "decide", "list", "--json").stdout) == []
    # A spec without a regression rule is usable input and a failing item, not an error.
    result = invoke(project, "decide", "--symptom", "tone", "--gate-spec", str(no_regression))
    assert result.exit_code == 0, result.output
    assert "[   fail] gate_spec: a gate spec needs at least one target and one regression" in (
        result.output
    )
