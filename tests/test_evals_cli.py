"""`ftod eval import`, `evals list|show`, `compare` and `gate` through the CLI on a real workspace:
the JSON contracts, the statistics against hand counts and scipy, and bad input that must leave
nothing behind."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner, Result

from tests.conftest import write_jsonl
from tui.cli import main

SLICES = ("billing", "shipping", "general")
N_ROWS = 60
ENTRY_KEYS = {
    "slice",
    "n",
    "mean_a",
    "mean_b",
    "delta",
    "ci",
    "p",
    "p_holm",
    "improvements",
    "regressions",
    "both_pass",
    "both_fail",
}


def invoke(workspace: Any, *args: str) -> Result:
    return CliRunner().invoke(main, ["--workspace", str(workspace.root), *args])


def stdout_json(result: Result) -> Any:
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def reference(i: int) -> str:
    return f"Answer number {i}: see the help centre."


def row(i: int) -> dict[str, Any]:
    # Distinct wording per row so the data checks find no near-duplicates to group.
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    user = f"Ticket {i}: {words[i % 8]} {words[(i * 3) % 8]} {i * 7919} {i**3} please help"
    return {
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": reference(i)},
        ],
        "metadata": {"slice": SLICES[i % 3], "id": f"t-{i}"},
    }


# Which examples (0-based row index i, dataset line i + 1) each model gets right.
def a_correct(i: int) -> bool:
    return i % 2 == 0


def b_correct(i: int) -> bool:
    return i % 5 != 0


B_MISSING = frozenset({7, 11})  # examples the candidate's file has no output for


def outputs_a() -> list[dict[str, Any]]:
    # Keyed by line; wrong answers differ only in case and punctuation on every fourth row,
    # so `normalised` passes what `exact` fails there.
    out = []
    for i in range(N_ROWS):
        if a_correct(i):
            text = f"  {reference(i)}\n"
        elif i % 4 == 1:
            text = reference(i).upper().rstrip(".")
        else:
            text = "I am not sure, please contact support."
        out.append({"line": i + 1, "output": text, "latency_s": 0.5, "output_tokens": 9})
    return out


def outputs_b() -> list[dict[str, Any]]:
    return [
        {"id": f"t-{i}", "output": reference(i) if b_correct(i) else "A refund is on its way."}
        for i in range(N_ROWS)
        if i not in B_MISSING
    ]


def hand_counts(
    indices: Iterable[int], a_ok: Callable[[int], bool], b_ok: Callable[[int], bool]
) -> dict[str, Any]:
    pairs = [(a_ok(i), b_ok(i)) for i in indices]
    n = len(pairs)
    improvements = sum(1 for a, b in pairs if b and not a)
    regressions = sum(1 for a, b in pairs if a and not b)
    return {
        "n": n,
        "mean_a": sum(a for a, _ in pairs) / n,
        "mean_b": sum(b for _, b in pairs) / n,
        "improvements": improvements,
        "regressions": regressions,
        "both_pass": sum(1 for a, b in pairs if a and b),
        "both_fail": sum(1 for a, b in pairs if not a and not b),
    }


def scipy_mcnemar(improvements: int, regressions: int) -> float:
    discordant = improvements + regressions
    if discordant == 0:
        return 1.0
    # Imported here so that only the p-value checks need scipy (a dev dependency).
    scipy_stats: Any = pytest.importorskip("scipy.stats")
    return float(scipy_stats.binomtest(min(improvements, regressions), discordant, 0.5).pvalue)


def check_entry(entry: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(entry) >= ENTRY_KEYS
    for key in ("n", "improvements", "regressions", "both_pass", "both_fail"):
        assert entry[key] == expected[key], (entry["slice"], key)
    assert entry["mean_a"] == pytest.approx(expected["mean_a"])
    assert entry["mean_b"] == pytest.approx(expected["mean_b"])
    assert entry["delta"] == pytest.approx(expected["mean_b"] - expected["mean_a"])
    assert entry["p"] == pytest.approx(
        scipy_mcnemar(expected["improvements"], expected["regressions"]), rel=1e-9
    )
    low, high = entry["ci"]
    assert -1.0 <= low <= entry["delta"] <= high <= 1.0


def check_comparison(
    payload: dict[str, Any],
    a_ok: Callable[[int], bool],
    b_ok: Callable[[int], bool],
    indices: Iterable[int],
) -> None:
    paired = [i for i in indices if i not in B_MISSING]
    assert set(payload) == {"scorer", "kind", "slices", "overall", "unpaired"}
    assert payload["kind"] == "pass_fail"
    names = [entry["slice"] for entry in payload["slices"]]
    assert names == sorted({SLICES[i % 3] for i in paired})
    for entry in payload["slices"]:
        in_slice = [i for i in paired if SLICES[i % 3] == entry["slice"]]
        check_entry(entry, hand_counts(in_slice, a_ok, b_ok))
    check_entry(payload["overall"], hand_counts(paired, a_ok, b_ok))
    assert payload["overall"]["slice"] == "overall"


def eval_count(workspace: Any) -> int:
    return len(stdout_json(invoke(workspace, "evals", "list", "--json")))


def stored_rows(workspace: Any) -> tuple[int, int]:
    connection = duckdb.connect(str(workspace.database_path), read_only=True)
    try:
        outputs = connection.execute("SELECT count(*) FROM eval_outputs").fetchone()
        scores = connection.execute("SELECT count(*) FROM eval_scores").fetchone()
    finally:
        connection.close()
    assert outputs is not None and scores is not None
    return int(outputs[0]), int(scores[0])


@pytest.fixture(scope="module")
def support_template(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A 60-row dataset `support@1` with slices and ids, split, and two evals of it."""
    from store.workspace import init_workspace

    tmp_path = tmp_path_factory.mktemp("support")
    workspace, _ = init_workspace(tmp_path / "project")
    data = write_jsonl(tmp_path / "support.jsonl", [row(i) for i in range(N_ROWS)])
    added = invoke(workspace, "data", "add", str(data), "--name", "support", "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["valid_rows"] == N_ROWS
    split = invoke(workspace, "data", "split", "support@1", "--test", "0.3", "--seed", "3")
    assert split.exit_code == 0, split.output
    base = invoke(
        workspace,
        "eval",
        "import",
        "--data",
        "support@1",
        "--outputs",
        str(write_jsonl(tmp_path / "a.jsonl", outputs_a())),
        "--label",
        "base",
        "--json",
    )
    record = stdout_json(base)
    assert record["id"] == 1 and record["label"] == "base" and record["rows"] == N_ROWS
    assert record["data"] == "support@1" and record["source"] == "import"
    assert record["scorers"] == [{"name": "exact"}] and record["keyed_by"] == ["line"]
    cand = invoke(
        workspace,
        "eval",
        "import",
        "--data",
        "support@1",
        "--outputs",
        str(write_jsonl(tmp_path / "b.jsonl", outputs_b())),
        "--label",
        "tuned",
        "--scorer",
        "exact",
        "--scorer",
        "contains:refund",
    )
    assert cand.exit_code == 0, cand.output
    assert "Imported eval 2 'tuned'" in cand.stdout
    assert "2 of 60 examples of support@1 have no output" in cand.output
    return workspace


@pytest.fixture
def support(support_template: Any, tmp_path: Path) -> Any:
    """A private copy of the template workspace: built once, since checking and splitting
    the dataset costs seconds, and copied so no test sees another's writes."""
    from store.workspace import Workspace

    target = tmp_path / "copy" / ".ftod"
    shutil.copytree(support_template.root, target)
    return Workspace(target)


def test_compare_matches_hand_counts_and_scipy(support: Any) -> None:
    result = invoke(support, "compare", "base", "tuned", "--json")
    payload = stdout_json(result)
    assert result.exit_code == 0
    assert payload["scorer"] == "exact"
    check_comparison(payload, a_correct, b_correct, range(N_ROWS))
    assert payload["unpaired"] == {"only_a": 2, "only_b": 0, "neither": 0}
    # Slices' p-values are Holm-adjusted together; overall is a single planned test.
    assert payload["overall"]["p_holm"] is None
    assert all(e["p_holm"] >= e["p"] for e in payload["slices"])
    # Evals are named by id as well as label, and the text form shows the same numbers.
    assert stdout_json(invoke(support, "compare", "1", "2", "--json")) == payload
    text = invoke(support, "compare", "base", "tuned")
    assert text.exit_code == 0 and "overall" in text.stdout and "billing" in text.stdout


def test_compare_with_a_scorer_that_was_not_stored(support: Any) -> None:
    # normalised was stored by neither eval: computed on the fly from outputs and references.
    payload = stdout_json(
        invoke(support, "compare", "base", "tuned", "--scorer", "normalised", "--json")
    )
    assert payload["scorer"] == "normalised"
    check_comparison(payload, lambda i: a_correct(i) or i % 4 == 1, b_correct, range(N_ROWS))
    # A spelled-out spec stored by one eval only: stored there, computed for the other.
    refund = stdout_json(
        invoke(support, "compare", "base", "tuned", "--scorer", "contains:refund", "--json")
    )
    assert refund["scorer"] == "contains"
    check_comparison(refund, lambda i: False, lambda i: not b_correct(i), range(N_ROWS))
    unknown = invoke(support, "compare", "base", "tuned", "--scorer", "bleurt")
    assert unknown.exit_code == 2 and "unknown scorer 'bleurt'" in unknown.output


def test_a_scorer_name_stored_with_other_settings_is_refused(support: Any, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", outputs_b())
    imported = invoke(
        support,
        "eval",
        "import",
        "--data",
        "support@1",
        "--outputs",
        str(path),
        "--label",
        "sorry",
        "--scorer",
        "contains:sorry",
    )
    assert imported.exit_code == 0, imported.output
    clash = invoke(support, "compare", "tuned", "sorry", "--scorer", "contains")
    assert clash.exit_code == 2 and "different settings" in clash.output
    # A full spec says which settings to use: stored where it matches, computed elsewhere.
    refund = stdout_json(
        invoke(support, "compare", "tuned", "sorry", "--scorer", "contains:refund", "--json")
    )
    assert refund["overall"]["delta"] == 0.0 and refund["overall"]["n"] == N_ROWS - 2


def test_custom_scorers_see_the_example(support: Any, tmp_path: Path) -> None:
    module = tmp_path / "my_scorers.py"
    module.write_text(
        "from core.evals.scorers import scorer\n"
        "@scorer('slice_is_billing')\n"
        "def slice_is_billing(output, reference, example):\n"
        "    return example['slice'] == 'billing' and reference is not None\n"
    )
    payload = stdout_json(
        invoke(
            support,
            "compare",
            "base",
            "tuned",
            "--scorer",
            "custom:slice_is_billing",
            "--scorer-file",
            str(module),
            "--json",
        )
    )
    billing = next(entry for entry in payload["slices"] if entry["slice"] == "billing")
    assert billing["mean_a"] == billing["mean_b"] == 1.0
    assert payload["overall"]["mean_a"] == pytest.approx(billing["n"] / payload["overall"]["n"])


GATE_PASS = """
name: release
scorer: exact
rules:
  - {slice: overall, kind: non_inferior, margin: 0.5}
  - {slice: "*", kind: floor, min: 0.5}
"""
GATE_FAIL = """
scorer: exact
rules:
  - {slice: overall, kind: target, margin: 0.9}
  - {slice: billing, kind: regression, margin: 0.5}
"""


def test_gate_pass_and_fail_are_stored_with_the_candidate(support: Any, tmp_path: Path) -> None:
    from core.evals.gate import load_gate_spec

    passing = tmp_path / "pass.yaml"
    passing.write_text(GATE_PASS)
    failing = tmp_path / "fail.yaml"
    failing.write_text(GATE_FAIL)

    ok = invoke(
        support, "gate", "--spec", str(passing), "--baseline", "base", "--candidate", "tuned"
    )
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.splitlines()[0] == "PASS" and "[pass] non_inferior" in ok.stdout
    bad = invoke(
        support, "gate", "--spec", str(failing), "--baseline", "base", "--candidate", "2", "--json"
    )
    assert bad.exit_code == 1
    verdict = json.loads(bad.stdout)
    assert verdict["verdict"] == "FAIL" and verdict["passed"] is False
    assert verdict["spec_hash"] == load_gate_spec(failing).spec_hash
    target, regression = verdict["rules"]
    assert target["passed"] is False and "target needs delta ≥ +0.9000" in target["evidence"]
    assert regression["passed"] is True and regression["slice"] == "billing"
    overall = hand_counts([i for i in range(N_ROWS) if i not in B_MISSING], a_correct, b_correct)
    assert target["values"]["n"] == overall["n"]
    assert target["values"]["delta"] == pytest.approx(overall["mean_b"] - overall["mean_a"])

    shown = stdout_json(invoke(support, "evals", "show", "tuned", "--json"))
    stored = shown["gate_results"]
    assert [g["passed"] for g in stored] == [True, False]
    assert stored[0]["spec_hash"] == load_gate_spec(passing).spec_hash
    assert stored[1]["spec_hash"] == verdict["spec_hash"]
    assert stored[1]["verdict"]["rules"] == verdict["rules"]
    assert stored[1]["baseline"] == {"id": 1, "label": "base"}
    # Stored with the candidate only.
    assert stdout_json(invoke(support, "evals", "show", "base", "--json"))["gate_results"] == []


def test_gate_rules_on_a_scorer_without_pairs_fail_and_bad_specs_exit_2(
    support: Any, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("rules:\n  - {slice: nowhere, kind: regression}\n")
    missing = invoke(
        support, "gate", "--spec", str(spec), "--baseline", "base", "--candidate", "tuned", "--json"
    )
    assert missing.exit_code == 1
    assert "no paired examples" in json.loads(missing.stdout)["rules"][0]["evidence"]
    spec.write_text("rules:\n  - {slice: overall, kind: sometimes}\n")
    bad = invoke(support, "gate", "--spec", str(spec), "--baseline", "base", "--candidate", "tuned")
    assert bad.exit_code == 2 and "unknown kind" in bad.output
    nothing = invoke(
        support,
        "gate",
        "--spec",
        str(tmp_path / "nope.yaml"),
        "--baseline",
        "base",
        "--candidate",
        "tuned",
    )
    assert nothing.exit_code == 2
    shown = stdout_json(invoke(support, "evals", "show", "tuned", "--json"))
    assert len(shown["gate_results"]) == 1  # only the verdict that was reached


def test_list_and_show(support: Any) -> None:
    listed = stdout_json(invoke(support, "evals", "list", "--json"))
    assert [(e["id"], e["label"], e["rows"]) for e in listed] == [
        (1, "base", N_ROWS),
        (2, "tuned", N_ROWS - len(B_MISSING)),
    ]
    assert listed[1]["scorers"][1] == {
        "name": "contains",
        "substrings": ["refund"],
        "ignore_case": False,
        "require": "all",
    }
    shown = stdout_json(invoke(support, "evals", "show", "tuned", "--json"))
    kept = [i for i in range(N_ROWS) if i not in B_MISSING]
    means = {s["scorer"]: s["mean"] for s in shown["scores"]}
    assert means["exact"] == pytest.approx(sum(map(b_correct, kept)) / len(kept))
    assert means["contains"] == pytest.approx(1 - means["exact"])
    assert {s["slice"]: s["n"] for s in shown["slices"]} == {
        name: sum(1 for i in kept if SLICES[i % 3] == name) for name in SLICES
    }
    assert "no output" in shown["notes"][0]
    assert "base" in invoke(support, "evals", "list").stdout
    assert "contains" in invoke(support, "evals", "show", "2").stdout


@pytest.mark.parametrize(
    ("lines", "fragment"),
    [
        ([{"line": 1, "output": "x"}, {"line": 61, "output": "y"}], "unknown line 61"),
        ([{"line": 2, "output": "x"}, {"line": 2, "output": "y"}], "duplicate line 2"),
        (
            [{"id": "t-2", "output": "x"}, {"line": 3, "output": "y"}, {"line": 3, "output": "z"}],
            "duplicate line 3",
        ),
        ([{"line": 1, "id": "t-3", "output": "x"}], "line 1 is the example with id 't-0'"),
        ([{"id": "t-4", "output": "x"}, {"line": 5, "output": "y"}], "duplicate line 5"),
        ([{"line": 1, "output": None}], "output is null"),
        ([{"line": 1, "output": "fine"}, "{not json"], "line 2: not valid JSON"),
        ([{"id": "t-999", "output": "x"}], "unknown id 't-999'"),
        ([{"line": 1}], "no output"),
        ([{"output": "x"}], "no line or id"),
        ([{"line": "one", "output": "x"}], "line must be a line number"),
        ([{"line": 1.5, "output": "x"}], "line must be a line number"),
        ([{"line": 0, "output": "x"}], "line must be a line number"),
        ([{"line": True, "output": "x"}], "line must be a line number"),
        ([], "no outputs"),
    ],
)
def test_unusable_outputs_exit_2_and_write_nothing(
    support: Any, tmp_path: Path, lines: list[Any], fragment: str
) -> None:
    before = (eval_count(support), stored_rows(support))
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    result = invoke(
        support, "eval", "import", "--data", "support@1", "--outputs", str(path), "--label", "bad"
    )
    assert result.exit_code == 2
    assert fragment in result.output and "Traceback" not in result.output
    as_json = invoke(
        support,
        "eval",
        "import",
        "--data",
        "support@1",
        "--outputs",
        str(path),
        "--label",
        "bad",
        "--json",
    )
    assert as_json.exit_code == 2 and fragment in json.loads(as_json.stdout)["error"]["message"]
    assert (eval_count(support), stored_rows(support)) == before


def test_line_numbers_as_other_writers_spell_them(support: Any, tmp_path: Path) -> None:
    # pandas writes 3.0 when the column has a gap; some tools quote numbers; a record may
    # carry both keys when they name the same example.
    lines: list[dict[str, Any]] = [
        {"line": "2", "output": "two"},
        {"line": 3.0, "output": "three"},
        {"line": 4, "id": "t-3", "output": "four"},
    ]
    path = write_jsonl(tmp_path / "spelled.jsonl", lines)
    result = invoke(
        support, "eval", "import", "--data", "support@1", "--outputs", str(path), "--label", "s"
    )
    assert result.exit_code == 0, result.output
    from store.db import Store
    from store.evals import EvalRepository

    repository = EvalRepository(Store.open(support))
    stored = repository.outputs(repository.eval_by_ref("s").eval_id)
    assert [(o.line, o.output) for o in stored] == [(2, "two"), (3, "three"), (4, "four")]
    again = write_jsonl(
        tmp_path / "again.jsonl", [{"line": "2", "output": "a"}, {"line": 2.0, "output": "b"}]
    )
    duplicate = invoke(
        support, "eval", "import", "--data", "support@1", "--outputs", str(again), "--label", "d"
    )
    assert duplicate.exit_code == 2 and "duplicate line 2" in duplicate.output


def test_problems_are_reported_together_with_line_numbers(support: Any, tmp_path: Path) -> None:
    lines: list[Any] = [{"line": 1, "output": "a"}, "nope", {"line": 1, "output": "b"}]
    lines += [{"line": 100 + k, "output": "c"} for k in range(12)]
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    result = invoke(
        support, "eval", "import", "--data", "support@1", "--outputs", str(path), "--label", "x"
    )
    assert result.exit_code == 2
    assert "14 problems; nothing was imported" in result.output
    assert "line 2: not valid JSON" in result.output and "line 3: duplicate line 1" in result.output
    assert "… and 4 more" in result.output


def test_bad_references_exit_2_and_write_nothing(support: Any, tmp_path: Path) -> None:
    before = (eval_count(support), stored_rows(support))
    good = write_jsonl(tmp_path / "good.jsonl", outputs_a())

    def run(*args: str) -> Result:
        return invoke(support, "eval", "import", "--outputs", str(good), *args)

    duplicate = run("--data", "support@1", "--label", "base")
    assert duplicate.exit_code == 2 and "already exists" in duplicate.output
    assert "--label base-2" in duplicate.output
    assert run("--data", "support@7", "--label", "new").exit_code == 2
    assert run("--data", "nope@1", "--label", "new").exit_code == 2
    assert run("--data", "support@1:holdout", "--label", "new").exit_code == 2
    assert run("--data", "support@1", "--label", "new", "--scorer", "bleurt").exit_code == 2
    assert run("--data", "support@1", "--label", "7").exit_code == 2
    assert (eval_count(support), stored_rows(support)) == before

    for command in (("evals", "show", "nope"), ("compare", "base", "nope")):
        unknown = invoke(support, *command)
        assert unknown.exit_code == 2 and "No eval labelled or numbered 'nope'" in unknown.output
        assert "base, tuned" in unknown.output


def test_evals_on_different_versions_do_not_compare(support: Any, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "v2.jsonl", [row(i) for i in range(N_ROWS + 3)])
    assert invoke(support, "data", "add", str(data), "--name", "support").exit_code == 0
    other = write_jsonl(tmp_path / "o.jsonl", [{"line": 1, "output": reference(0)}])
    imported = invoke(
        support, "eval", "import", "--data", "support@2", "--outputs", str(other), "--label", "v2"
    )
    assert imported.exit_code == 0, imported.output
    result = invoke(support, "compare", "base", "v2", "--json")
    assert result.exit_code == 2
    message = json.loads(result.stdout)["error"]["message"]
    assert "support@1" in message and "support@2" in message
    spec = tmp_path / "gate.yaml"
    spec.write_text(GATE_PASS)
    gate = invoke(support, "gate", "--spec", str(spec), "--baseline", "base", "--candidate", "v2")
    assert gate.exit_code == 2


def split_lines(workspace: Any, split: str) -> list[int]:
    from store.datasets import DatasetRepository
    from store.db import Store

    repository = DatasetRepository(Store.open(workspace))
    version = repository.version("support@1")
    split_id = repository.splits(version.version_id)[-1].split_id
    return [line for line, *_ in repository.iter_export_rows(version.version_id, split_id, split)]


def test_an_eval_on_one_split(support: Any, tmp_path: Path) -> None:
    test_lines = split_lines(support, "test")
    train_lines = split_lines(support, "train")
    assert test_lines and train_lines
    by_line = {o["line"]: o for o in outputs_a()}
    path = write_jsonl(tmp_path / "test.jsonl", [by_line[line] for line in test_lines])
    result = invoke(
        support,
        "eval",
        "import",
        "--data",
        "support@1:test",
        "--outputs",
        str(path),
        "--label",
        "base-test",
        "--json",
    )
    record = stdout_json(result)
    assert record["data"] == "support@1:test" and record["split"] == "test"
    assert record["rows"] == len(test_lines) and record["without_output"] == 0

    before = (eval_count(support), stored_rows(support))
    stray = [by_line[test_lines[0]], by_line[train_lines[0]]]
    bad = invoke(
        support,
        "eval",
        "import",
        "--data",
        "support@1:test",
        "--outputs",
        str(write_jsonl(tmp_path / "stray.jsonl", stray)),
        "--label",
        "stray",
    )
    assert bad.exit_code == 2
    assert f"unknown line {train_lines[0]}" in bad.output and "train split, not test" in bad.output
    by_id = [{"id": f"t-{train_lines[0] - 1}", "output": "x"}]
    bad_id = invoke(
        support,
        "eval",
        "import",
        "--data",
        "support@1:test",
        "--outputs",
        str(write_jsonl(tmp_path / "stray_id.jsonl", by_id)),
        "--label",
        "stray",
    )
    assert bad_id.exit_code == 2 and "not in the test split" in bad_id.output
    assert (eval_count(support), stored_rows(support)) == before

    # The split eval pairs with the whole-version eval on the test lines only.
    payload = stdout_json(invoke(support, "compare", "base-test", "tuned", "--json"))
    check_comparison(payload, a_correct, b_correct, [line - 1 for line in test_lines])


def test_ids_must_be_unique_when_outputs_use_them(workspace: Any, tmp_path: Path) -> None:
    rows = [row(i) for i in range(6)]
    rows[4]["metadata"]["id"] = "t-1"
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    assert invoke(workspace, "data", "add", str(data), "--name", "dups").exit_code == 0
    by_id = write_jsonl(tmp_path / "o.jsonl", [{"id": "t-0", "output": "x"}])
    result = invoke(
        workspace, "eval", "import", "--data", "dups@1", "--outputs", str(by_id), "--label", "x"
    )
    assert result.exit_code == 2 and "metadata.id 't-1' is not unique" in result.output
    by_line = write_jsonl(tmp_path / "l.jsonl", [{"line": 1, "output": "x"}])
    ok = invoke(
        workspace, "eval", "import", "--data", "dups@1", "--outputs", str(by_line), "--label", "x"
    )
    assert ok.exit_code == 0, ok.output


def test_examples_without_reference_skip_reference_scorers_with_a_note(
    workspace: Any, tmp_path: Path
) -> None:
    prompts: list[dict[str, Any]] = [
        {
            "messages": [{"role": "user", "content": f"Return item {i} of the catalogue as JSON"}],
            "metadata": {"tags": ["json", "catalogue"], "id": i},
        }
        for i in range(4)
    ]
    prompts.append(
        {
            "messages": [
                {"role": "user", "content": "Return the empty JSON object"},
                {"role": "assistant", "content": "{}"},
            ],
            "metadata": {"id": 4},
        }
    )
    data = write_jsonl(tmp_path / "prompts.jsonl", prompts)
    assert invoke(workspace, "data", "add", str(data), "--name", "prompts").exit_code == 0
    outputs = write_jsonl(
        tmp_path / "o.jsonl",
        [
            {"id": 0, "output": '{"item": 0}'},
            {"id": "1", "output": "not json"},
            {"id": 2, "output": '{"item": 2}'},
            {"id": 3, "output": "[3]"},
            {"id": 4, "output": "{}"},
        ],
    )
    result = invoke(
        workspace,
        "eval",
        "import",
        "--data",
        "prompts@1",
        "--outputs",
        str(outputs),
        "--label",
        "json-a",
        "--scorer",
        "exact",
        "--scorer",
        "json_valid",
        "--json",
    )
    record = stdout_json(result)
    scores = {s["scorer"]: s for s in record["scores"]}
    assert scores["exact"] == {"scorer": "exact", "mean": 1.0, "scored": 1, "skipped": 4}
    assert scores["json_valid"] == {"scorer": "json_valid", "mean": 0.8, "scored": 5, "skipped": 0}
    assert any(
        "exact: 4 of 5 outputs not scored" in note and "no reference" in note
        for note in record["notes"]
    )
    shown = stdout_json(invoke(workspace, "evals", "show", "json-a", "--json"))
    # With no metadata.slice, the first tag is the slice.
    assert shown["slices"] == [{"slice": "json", "n": 4}, {"slice": None, "n": 1}]

    text = invoke(
        workspace,
        "eval",
        "import",
        "--data",
        "prompts@1",
        "--outputs",
        str(outputs),
        "--label",
        "json-b",
        "--scorer",
        "json_valid",
    )
    assert text.exit_code == 0 and "json_valid: mean 0.8000 over 5" in text.stdout
    # The default scorer (exact) pairs only the example with a reference.
    payload = stdout_json(invoke(workspace, "compare", "json-a", "json-b", "--json"))
    assert payload["scorer"] == "json_valid"  # the one scorer both evals stored
    assert payload["overall"]["n"] == 5 and payload["slices"][0]["slice"] == "json"
    exact = stdout_json(
        invoke(workspace, "compare", "json-a", "json-b", "--scorer", "exact", "--json")
    )
    assert exact["overall"]["n"] == 1 and exact["unpaired"]["neither"] == 4
