"""The run-config schema: the parser, the ranges, the README's reference and the YAML loader
are all read off the dataclasses, so each setting is described once."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.evals.gate import load_gate_spec
from core.evals.prompts import read_prompt_file
from core.runs.config import (
    ConfigField,
    LoraConfig,
    QloraConfig,
    RunConfig,
    TrainConfig,
    config_reference_markdown,
    config_schema,
    load_run_config,
    parse_run_config,
    reference_in,
    replace_reference,
    run_config_from_json,
)
from core.runs.limits import MAX_SEQ_LEN_LIMIT, SEED_LIMIT
from core.yamlfile import load_yaml_file
from store.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = {"base_model": "m", "dataset": "d@1"}
SCHEMA = config_schema()
NUMERIC = [entry for entry in SCHEMA if entry.numeric]


def by_path(path: str) -> ConfigField:
    (entry,) = [entry for entry in SCHEMA if entry.path == path]
    return entry


def document_with(path: str, value: Any) -> dict[str, Any]:
    """A minimal config document with `path` (a dotted YAML key) set to `value`."""
    document: dict[str, Any] = dict(REQUIRED)
    *sections, key = path.split(".")
    target = document
    for name in sections:
        target = target.setdefault(name, {})
    target[key] = value
    return document


def value_in(config: RunConfig, entry: ConfigField) -> Any:
    holder: Any = config if entry.owner is None else getattr(config, entry.owner)
    return getattr(holder, entry.attribute)


def other_value(entry: ConfigField) -> tuple[Any, Any]:
    """A valid YAML value other than the default, and the value it parses to."""
    setting = entry.setting
    if entry.kind == "bool":
        return (not entry.default, not entry.default)
    if entry.kind == "choice":
        choice = next(c for c in setting.choices if c != entry.default)
        return (choice, choice)
    if entry.kind == "targets":
        return (["q_proj", "v_proj"], ("q_proj", "v_proj"))
    if entry.numeric:
        assert setting.maximum is not None
        return (setting.maximum, setting.maximum)
    return ("some-value", "some-value")


# -- the schema covers the dataclasses -------------------------------------------------------


def test_every_dataclass_field_is_in_the_schema_once() -> None:
    expected = {
        ("", f.name)
        for f in dataclasses.fields(RunConfig)
        if f.name not in {"lora", "qlora", "train"}
    }
    for owner, cls in (("lora", LoraConfig), ("qlora", QloraConfig), ("train", TrainConfig)):
        expected |= {(owner, f.name) for f in dataclasses.fields(cls)}
    found = [(entry.owner or "", entry.attribute) for entry in SCHEMA]
    assert sorted(found) == sorted(expected)
    assert len({entry.path for entry in SCHEMA}) == len(SCHEMA)
    assert {entry.section for entry in SCHEMA} == {"Run", "LoRA", "QLoRA", "Training"}
    assert all(entry.setting.label and entry.setting.help for entry in SCHEMA)


def test_every_numeric_setting_has_a_range() -> None:
    assert len(NUMERIC) >= 19
    for entry in NUMERIC:
        setting = entry.setting
        assert setting.minimum is not None and setting.maximum is not None, entry.path
        assert setting.minimum < setting.maximum, entry.path
    assert by_path("train.max_steps").setting.maximum == 10**9
    assert by_path("train.batch_size").setting.maximum == 65_536
    assert by_path("train.max_seq_len").setting.maximum == 1_048_576
    assert (by_path("train.seed").setting.minimum, by_path("train.seed").setting.maximum) == (
        0,
        2**31 - 1,
    )
    assert by_path("lora.r").setting.maximum == 4096


def test_defaults_are_the_dataclass_defaults() -> None:
    parsed = parse_run_config(dict(REQUIRED))
    assert parsed == RunConfig(base_model=REQUIRED["base_model"], dataset=REQUIRED["dataset"])
    for entry in SCHEMA:
        if not entry.required:
            assert value_in(parsed, entry) == entry.default, entry.path
    assert [entry.path for entry in SCHEMA if entry.required] == ["base_model", "dataset"]


# -- the parser -----------------------------------------------------------------------------


@pytest.mark.parametrize("entry", SCHEMA, ids=lambda entry: entry.path)
def test_every_setting_round_trips_through_yaml(entry: ConfigField, tmp_path: Path) -> None:
    raw_value, parsed_value = other_value(entry)
    document = document_with(entry.path, raw_value)
    document.setdefault("name", "named")  # else a loaded file names the run after itself
    config = parse_run_config(document)
    assert value_in(config, entry) == parsed_value
    path = tmp_path / "run.yaml"
    path.write_text(config.as_yaml(), encoding="utf-8")
    assert load_run_config(path) == config
    assert run_config_from_json(config.as_json()) == config


@pytest.mark.parametrize("entry", NUMERIC, ids=lambda entry: entry.path)
def test_out_of_range_values_name_their_setting(entry: ConfigField) -> None:
    setting = entry.setting
    assert setting.minimum is not None and setting.maximum is not None
    whole = entry.kind in ("int", "optional_int")
    above = setting.maximum + 1 if whole else setting.maximum * 2
    below = setting.minimum if setting.exclusive_minimum else setting.minimum - 1
    for bad, problem in (
        (above, "must be <="),
        (below, "must be >" if setting.exclusive_minimum else "must be >="),
        (10**400, "must be <="),  # larger than any float: compared as an int, never converted
        (float("nan"), "expected a finite number"),
        (float("inf"), "expected a finite number"),
        ("many", "expected a number"),
        (True, "expected a number"),
    ):
        with pytest.raises(InputError) as caught:
            parse_run_config(document_with(entry.path, bad))
        assert caught.value.field == entry.path, bad
        assert caught.value.message.startswith(f"{entry.path}: {problem}"), caught.value.message


def test_max_steps_1e20_is_refused_not_rounded() -> None:
    with pytest.raises(InputError) as caught:
        parse_run_config({**REQUIRED, "train": {"max_steps": 1e20}})
    assert caught.value.field == "train.max_steps"
    assert "must be <= 1000000000" in caught.value.message


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("qlora.enabled", "yes", "expected true or false"),
        ("train.scheduler", "step", "expected one of cosine, linear, constant"),
        ("train.precision", ["bf16"], "expected one of"),
        ("lora.target_modules", 3, "expected a list of module names"),
        ("lora.target_modules", [], "expected a list of module names"),
        ("train.batch_size", 1.5, "expected a whole number"),
        ("splits.val", 3, "expected a split name or null"),
        ("revision", 3, "expected a string"),
        ("base_model", "  ", "required"),
        ("lora.rank", 8, "unknown key"),
    ],
)
def test_wrong_types_name_their_setting(path: str, value: Any, problem: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_run_config(document_with(path, value))
    assert caught.value.field == path
    assert caught.value.message.startswith(f"{path}: {problem}"), caught.value.message


def test_a_hostile_value_makes_a_short_message() -> None:
    # Nine levels of ten aliases: a billion strings if the error printed the value whole.
    layers = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        layers.append(f"a{level}: &a{level} [{refs}]")
    bomb = yaml.safe_load("\n".join(layers))["a8"]
    with pytest.raises(InputError) as caught:
        parse_run_config({**REQUIRED, "train": {"lr": bomb}})
    assert caught.value.field == "train.lr" and len(caught.value.message) < 200


def test_a_splits_mapping_without_val_means_no_validation() -> None:
    assert parse_run_config({**REQUIRED, "splits": {"train": "all"}}).val_split is None
    assert parse_run_config({**REQUIRED, "splits": None}).val_split == "val"


# -- the YAML loader -------------------------------------------------------------------------

DEEP_YAML = "[" * 5000 + "]" * 5000


def test_the_loader_refuses_what_is_not_a_small_yaml_file(tmp_path: Path) -> None:
    def problem(path: Path) -> str:
        with pytest.raises(InputError) as caught:
            load_yaml_file(path, what="run config")
        return caught.value.message

    assert "no such run config" in problem(tmp_path / "missing.yaml")
    assert "not a regular file" in problem(tmp_path)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert "not a regular file" in problem(fifo)  # refused without waiting for a writer
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 110_000)
    assert "too big for a run config" in problem(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert "cannot read" in problem(latin)
    deep = tmp_path / "deep.yaml"
    deep.write_text(DEEP_YAML)
    assert "nested too deeply" in problem(deep)
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    assert "not valid YAML" in problem(broken)


def test_prompt_and_gate_files_use_the_loader(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text(DEEP_YAML)
    with pytest.raises(InputError, match="nested too deeply"):
        read_prompt_file(deep)
    with pytest.raises(InputError, match="nested too deeply") as caught:
        load_gate_spec(deep)
    assert caught.value.title == "Bad gate spec"


def run_ftod(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if k != "FTOD_WORKSPACE"},
            "PYTHONPATH": str(ROOT),
        },
        timeout=120,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    assert run_ftod(tmp_path, "init").returncode == 0
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ("train", "deep.yaml"),
        ("prompt", "add", "deep", "--file", "deep.yaml"),
        ("gate", "--spec", "deep.yaml", "--baseline", "a", "--candidate", "b"),
    ],
    ids=["run config", "prompt", "gate spec"],
)
def test_deep_yaml_exits_2_with_a_clear_message(project: Path, args: tuple[str, ...]) -> None:
    (project / "deep.yaml").write_text(DEEP_YAML)
    result = run_ftod(project, *args)
    assert result.returncode == 2, result.stderr
    assert "nested too deeply" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "train", ["max_steps: 1.0e+20", "batch_size: 1000000000", "seed: 2147483648"]
)
def test_ftod_train_refuses_out_of_range_settings_and_writes_nothing(
    project: Path, train: str
) -> None:
    config = project / "run.yaml"
    config.write_text(f"base_model: m\ndataset: d@1\ntrain:\n  {train}\n")
    result = run_ftod(project, "train", "run.yaml")
    assert result.returncode == 2, result.stderr
    assert f"train.{train.split(':')[0]}: must be <=" in result.stderr
    assert not any((project / ".ftod" / "runs").glob("*"))


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (
            ("data", "check", "rows.jsonl", "--max-seq-len", str(MAX_SEQ_LEN_LIMIT + 1)),
            "--max-seq-len",
        ),
        (("data", "check", "rows.jsonl", "--max-seq-len", "2147483648"), "--max-seq-len"),
        (("data", "split", "support@1", "--seed", str(SEED_LIMIT + 1)), "--seed"),
        (("data", "split", "support@1", "--seed", "-1"), "--seed"),
    ],
)
def test_cli_flags_share_the_schema_ranges(project: Path, args: tuple[str, ...], flag: str) -> None:
    (project / "rows.jsonl").write_text("")
    result = run_ftod(project, *args)
    assert result.returncode == 2
    assert flag in result.stderr and "range" in result.stderr
    assert "Traceback" not in result.stderr


# -- the README and packaging ----------------------------------------------------------------


def test_the_readme_reference_is_what_the_schema_generates() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert reference_in(readme) == config_reference_markdown(), (
        "README.md's run-config reference is stale: run `python -m core.runs.config "
        "--update README.md`"
    )
    for entry in SCHEMA:
        assert f"| `{entry.path}` |" in readme


def test_replace_reference_rewrites_only_the_block() -> None:
    stale = "intro\n<!-- run-config-reference:start (x) -->\nold\n<!-- run-config-reference:end -->\nend\n"
    with pytest.raises(InputError, match="markers"):
        replace_reference(stale, "new\n")  # the start marker must be the exact one
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rewritten = replace_reference(readme, "new\n")
    assert reference_in(rewritten) == "new\n"
    assert replace_reference(rewritten, config_reference_markdown()) == readme


def test_the_readme_example_config_parses() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Training runs") :]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match is not None
    config = parse_run_config(yaml.safe_load(match.group(1)))
    assert config.train.early_stopping_patience == 3 and config.qlora.enabled is False


def test_the_qlora_extra_the_advice_names_exists() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = pyproject["project"]["optional-dependencies"]
    advice = (ROOT / "core" / "runs" / "validate.py").read_text(encoding="utf-8")
    assert "pip install 'ftod[qlora]'" in advice
    assert any(requirement.startswith("bitsandbytes") for requirement in extras["qlora"])
