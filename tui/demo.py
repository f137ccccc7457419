"""`ftod demo`: a workspace built from sample_runs/, outside the user's own workspace.

Besides the datasets it holds the LoRA run recorded by sample_runs/make_recorded_run.py,
and a run config the user can launch from the demo folder to train a real (small) run on
the CPU and watch it grow next to the recorded one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from core.datasets import SplitOutcome, add_dataset, split_dataset
from core.runs.rundir import RunPaths, list_run_dirs
from store.datasets import DatasetRepository
from store.db import Store
from store.errors import InputError
from store.workspace import Workspace, init_workspace

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RUNS = REPO_ROOT / "sample_runs"
SUPPORT_DIR = SAMPLE_RUNS / "support_tickets"
RECORDED_RUNS = SAMPLE_RUNS / "runs"
BASE_MODEL = SAMPLE_RUNS / "base_model"
RUN_CONFIG = SAMPLE_RUNS / "support-lora.yaml"
RUN_CONFIG_NAME = "support-lora.yaml"

# Every place a run directory records a path that depends on where the checkout lives.
# The committed copy holds them relative to the repository root; the demo makes them
# absolute again for its own checkout. The recorder and the demo share this list so
# they cannot drift apart.
RUN_JSON_PATH_FIELDS: tuple[tuple[str, ...], ...] = (
    ("config", "base_model"),
    ("config_path",),
    ("lineage", "base_model"),
    ("lineage", "base_model_path"),
    ("lineage", "launch_cwd"),
)
ADAPTER_CONFIG_PATH_FIELDS: tuple[tuple[str, ...], ...] = (("base_model_name_or_path",),)
CONFIG_YAML_PATH_FIELDS: tuple[tuple[str, ...], ...] = (("base_model",),)


def split_support_tickets(repository: DatasetRepository, ref: str) -> SplitOutcome:
    """The demo's split; the recorded run was trained on exactly this one."""
    return split_dataset(
        repository,
        ref,
        val=0.1,
        test=0.1,
        seed=0,
        group_by="customer_id",
        stratify="label",
    )


def to_repo_relative(value: str) -> str:
    """A path inside this checkout as a POSIX path relative to it ("." for the root)."""
    path = Path(value)
    if not path.is_absolute():
        return value
    try:
        relative = path.resolve().relative_to(REPO_ROOT)
    except ValueError as error:
        raise InputError(
            f"{value} is outside the repository {REPO_ROOT}; a committed run may only "
            "point into the checkout"
        ) from error
    return relative.as_posix() or "."


def to_absolute(value: str) -> str:
    """The inverse of `to_repo_relative`, for wherever this checkout is installed."""
    path = Path(value)
    if path.is_absolute():
        return value
    return str((REPO_ROOT / path).resolve())


PathFields = tuple[tuple[str, ...], ...]


def _rewrite(payload: Any, fields: PathFields, change: Callable[[str], str]) -> bool:
    changed = False
    for keys in fields:
        holder = payload
        for key in keys[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or not isinstance(holder.get(keys[-1]), str):
            continue
        new = change(holder[keys[-1]])
        if new != holder[keys[-1]]:
            holder[keys[-1]] = new
            changed = True
    return changed


def _rewrite_json(path: Path, fields: PathFields, change: Callable[[str], str]) -> None:
    if not path.is_file():
        return
    payload = json.loads(path.read_text(encoding="utf-8"))
    if _rewrite(payload, fields, change):
        # run.json is written with indent=1 and sorted keys (rundir.atomic_write_json);
        # keep that layout so a rewritten file diffs only in the paths.
        path.write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")


def rebase_run_paths(run_dir: Path, change: Callable[[str], str]) -> None:
    """Apply `change` to every checkout-dependent path a run directory records."""
    paths = RunPaths(run_dir)
    _rewrite_json(paths.run_json, RUN_JSON_PATH_FIELDS, change)
    _rewrite_json(paths.adapter / "adapter_config.json", ADAPTER_CONFIG_PATH_FIELDS, change)
    config_yaml = run_dir / "config.yaml"
    if config_yaml.is_file():
        payload = yaml.safe_load(config_yaml.read_text(encoding="utf-8"))
        if _rewrite(payload, CONFIG_YAML_PATH_FIELDS, change):
            # Same dump settings as RunConfig.as_yaml, so the key order is kept.
            config_yaml.write_text(yaml.safe_dump(payload, sort_keys=False), encoding="utf-8")


def install_recorded_runs(workspace: Workspace, log: Callable[[str], None]) -> list[str]:
    """Copy the committed runs into the workspace (once), with absolute paths again."""
    installed: list[str] = []
    for recorded in list_run_dirs(RECORDED_RUNS):
        target = workspace.runs_dir / recorded.run_id
        if (target / "run.json").is_file():
            log(f"run {recorded.run_id}: already there")
            continue
        workspace.runs_dir.mkdir(parents=True, exist_ok=True)
        # Staged under a hidden name and renamed, as prepare_run does: the run list never
        # sees a half-copied run.
        staging = workspace.runs_dir / f".{recorded.run_id}.demo.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(recorded.root, staging)
        rebase_run_paths(staging, to_absolute)
        staging.replace(target)
        log(f"run {recorded.run_id}: added (recorded LoRA run)")
        installed.append(recorded.run_id)
    return installed


def write_run_config(folder: Path) -> Path | None:
    """The sample run config with base_model pointing at this checkout's base model."""
    if not RUN_CONFIG.is_file():
        return None
    payload = yaml.safe_load(RUN_CONFIG.read_text(encoding="utf-8"))
    _rewrite(payload, CONFIG_YAML_PATH_FIELDS, to_absolute)
    target = folder / RUN_CONFIG_NAME
    header = (
        f"# Written by `ftod demo` from {RUN_CONFIG.relative_to(REPO_ROOT).as_posix()}, with "
        "base_model made absolute so it works from any folder.\n"
    )
    target.write_text(header + yaml.safe_dump(payload, sort_keys=False), encoding="utf-8")
    return target


RECORDED_EVALS = SAMPLE_RUNS / "evals"
DEMO_EVALS = (
    ("demo-base", "base-fewshot", None),
    ("demo-candidate", "lora-short", "support-lora"),
)
DEMO_SCORERS = ("rouge_l", "exact", "refusal")


def install_recorded_evals(workspace: Workspace, store: Store, log: Callable[[str], None]) -> None:
    """The recorded baseline and candidate outputs as evals, their prompts, and the gate."""
    from core.evals.prompts import add_prompt
    from core.evals.service import import_eval, run_gate
    from store.evals import EvalRepository
    from store.prompts import PromptRepository

    if not (RECORDED_EVALS / "demo-base.jsonl").is_file():
        return
    evals = EvalRepository(store)
    prompts = PromptRepository(store)
    known = set(evals.labels())
    for label, prompt, adapter in DEMO_EVALS:
        add_prompt(prompts, prompt, RECORDED_EVALS / f"prompt-{prompt}.yaml")
        if label in known:
            continue
        import_eval(
            DatasetRepository(store),
            evals,
            "heldout-eval@1",
            RECORDED_EVALS / f"{label}.jsonl",
            label,
            DEMO_SCORERS,
            model="sample_runs/base_model",
            adapter=adapter,
            prompt=f"{prompt}@1",
        )
        log(f"eval {label}: imported (outputs recorded by sample_runs/make_recorded_eval.py)")
    if not evals.gate_results(evals.eval_by_ref("demo-candidate").eval_id):
        verdict = run_gate(evals, RECORDED_EVALS / "gate.yaml", "demo-base", "demo-candidate")
        log(f"gate: {verdict.verdict.verdict}")
    install_recorded_judge(store, log)
    log("Review baseline vs candidate example by example: ftod review (or v in the dashboard)")


def install_recorded_judge(store: Store, log: Callable[[str], None]) -> None:
    """The recorded `ftod judge` run of the pair (sample_runs/make_recorded_eval.py)."""
    from store.evals import EvalRepository
    from store.judges import JudgedExample, JudgeRepository

    path = RECORDED_EVALS / "demo-judge.json"
    if not path.is_file():
        return
    evals, judges = EvalRepository(store), JudgeRepository(store)
    baseline = evals.eval_by_ref("demo-base").eval_id
    candidate = evals.eval_by_ref("demo-candidate").eval_id
    if judges.latest_run(baseline, candidate) is not None:
        return
    recorded = json.loads(path.read_text(encoding="utf-8"))
    settings = dict(recorded["settings"])
    settings["judge_model_path"] = to_absolute(str(settings["judge_model_path"]))
    verdicts = [JudgedExample(**row) for row in recorded["verdicts"]]
    judges.add_run(
        baseline_eval_id=baseline,
        candidate_eval_id=candidate,
        judge_model=str(recorded["judge_model"]),
        template_sha256=str(recorded["template_sha256"]),
        settings=settings,
        verdicts=verdicts,
    )
    inconsistent = sum(1 for verdict in verdicts if verdict.verdict == "inconsistent")
    log(
        f"judge: the 1M-parameter demo model as a (deliberately weak) LLM judge; "
        f"{inconsistent} of {len(verdicts)} verdicts flip when the answers swap places, which "
        "is what the swap is there to catch (ftod judge show --baseline demo-base "
        "--candidate demo-candidate)"
    )


def build_demo_workspace(
    folder: Path | None = None, log: Callable[[str], None] = print, *, with_evals: bool = True
) -> Workspace:
    """(Re)build the demo workspace. Idempotent: same files, same versions, same runs."""
    if not SUPPORT_DIR.is_dir():
        raise InputError(
            f"sample data missing at {SUPPORT_DIR}; run sample_runs/make_support_tickets.py"
        )
    target = folder or Path(tempfile.gettempdir()) / "ftod-demo"
    workspace, _ = init_workspace(target)
    store = Store.open(workspace)
    repository = DatasetRepository(store)
    for file_name, dataset in (
        ("support_tickets.jsonl", "support-tickets"),
        ("support_tickets_v2.jsonl", "support-tickets"),
        ("heldout_eval.jsonl", "heldout-eval"),
    ):
        outcome = add_dataset(workspace, repository, SUPPORT_DIR / file_name, dataset)
        state = "added" if outcome.created else "already there"
        log(f"{outcome.version.ref}: {state} ({outcome.version.rows_total} rows)")
        if outcome.created and dataset == "support-tickets":
            split_support_tickets(repository, outcome.version.ref)
    install_recorded_runs(workspace, log)
    config = write_run_config(workspace.root.parent)
    if config is not None:
        log(
            "To train a real small LoRA run on the CPU (a few minutes) and watch it grow "
            f"beside the recorded one: cd {workspace.root.parent} && ftod train {config.name}"
        )
    from core.runs.ingest import ingest_runs
    from store.runs import RunRepository

    ingest_runs(workspace, RunRepository(store))
    if with_evals:
        install_recorded_evals(workspace, store, log)
    return workspace
