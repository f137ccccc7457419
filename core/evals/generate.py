"""Generating an eval's outputs with a local model (+ an optional LoRA adapter) and a prompt.

Batched, length-sorted, left-padded greedy generation with the KV cache; each finished batch is
appended to a JSONL checkpoint (`{"line", "output", "input_tokens", "output_tokens",
"latency_s", "finish_reason"}`) and flushed, so a crash loses at most one batch and `--resume`
skips the lines already there. The result is stored exactly as `ftod eval import` stores an
outputs file (same checks, scorers and notes), with source "generate".

With core.evals.judge, the only modules of `core.evals` that import torch, transformers and
peft, always inside functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence, Sized
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from core.evals.outputs import EvalExample
from core.evals.prompts import PromptSpec, input_messages
from core.evals.scorers import Scorer, build_scorers
from core.evals.service import (
    ComparisonOutcome,
    EvalSet,
    ImportOutcome,
    check_label,
    compare_evals,
    load_eval_set,
    store_outputs,
)
from core.model_files import check_model_files
from core.safefiles import append_durably, atomic_replace, finished_lines
from store.datasets import DatasetRepository
from store.errors import InputError
from store.evals import EvalOutput, EvalRepository
from store.prompts import PromptRecord, PromptRepository
from store.workspace import Workspace

SOURCE_GENERATE = "generate"
Progress = Callable[[int, int], None]


# -- the adapter and the model -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdapterSource:
    path: Path
    """The folder holding adapter_config.json."""
    label: str
    """What is recorded on the eval: the run id, or the folder."""
    base_model: str | None
    """adapter_config.json `base_model_name_or_path` (else the run's config.base_model)."""
    lineage: Mapping[str, Any] = field(default_factory=dict)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def resolve_adapter(workspace: Workspace | None, ref: str) -> AdapterSource:
    """A run id/name (its `adapter/`), a run folder, or an adapter folder in PEFT format."""
    folder = Path(ref).expanduser()
    run_json: dict[str, Any] = {}
    label = ref
    if folder.is_dir():
        if (folder / "adapter_config.json").is_file():
            adapter = folder
            if (folder.parent / "run.json").is_file():
                run_json = _read_json(folder.parent / "run.json")
        elif (folder / "adapter" / "adapter_config.json").is_file():
            adapter = folder / "adapter"
            run_json = _read_json(folder / "run.json")
        else:
            raise InputError(
                f"--adapter {ref}: the folder has no adapter_config.json (a PEFT adapter) and "
                "no adapter/ folder of a finished run"
            )
        label = str(run_json.get("run_id") or adapter.resolve())
    else:
        if workspace is None:
            raise InputError(f"--adapter {ref}: no such folder")
        from core.runs.launch import find_run

        paths = find_run(workspace, ref)
        adapter = paths.adapter
        run_json = _read_json(paths.run_json)
        if not (adapter / "adapter_config.json").is_file():
            raise InputError(
                f"run {paths.run_id} has no adapter yet (it is written when training "
                "finishes; see `ftod runs show`)"
            )
        label = paths.run_id
    config = _read_json(adapter / "adapter_config.json")
    recorded_config = run_json.get("config") or {}
    base = config.get("base_model_name_or_path") or recorded_config.get("base_model")
    return AdapterSource(
        path=adapter.resolve(),
        label=label,
        base_model=str(base) if base else None,
        lineage=dict(run_json.get("lineage") or {}),
    )


def resolve_model(model: str) -> str:
    """A model folder (resolved, must hold config.json) or a hub id as given."""
    text = model.strip()
    folder = Path(text).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise InputError(f"--model {model}: the folder has no config.json")
        return str(folder.resolve())
    if text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise InputError(f"--model {model}: no such folder, and not a hub id of the form org/name")
    return text


_HUB_CACHE = re.compile(r"models--([^/]+)--([^/]+)")


def _names(model: str) -> set[str]:
    text = model.strip().rstrip("/")
    names = {text}
    folder = Path(text).expanduser()
    if folder.exists():
        names.add(str(folder.resolve()))
    found = _HUB_CACHE.search(text)
    if found:
        names.add(f"{found.group(1)}/{found.group(2)}")
    return names


def check_adapter(model: str, adapter: AdapterSource) -> None:
    """InputError when the adapter was trained on another base model than `model`."""
    base = adapter.base_model
    if base is None or _names(base) & _names(model):
        return
    from core.runs.validate import weights_digest

    model_dir = Path(model)
    recorded = adapter.lineage.get("base_model_weights_sha256")
    if model_dir.is_dir():
        if recorded and weights_digest(model_dir, None) == recorded:
            return  # the same weights, moved or copied elsewhere
        base_dir = Path(base).expanduser()
        if (
            not recorded
            and base_dir.is_dir()
            and weights_digest(base_dir, None) == weights_digest(model_dir, None)
        ):
            return
    raise InputError(
        f"adapter {adapter.label} was trained on {base}, not {model}; pass --model {base}",
        title="Adapter for another model",
    )


class LoadedModel:
    """A causal LM (a PeftModel when an adapter is loaded) and its left-padding tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, name: str, has_adapter: bool) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.has_adapter = has_adapter

    @contextmanager
    def adapter_disabled(self) -> Iterator[None]:
        """The base model alone (peft `disable_adapter`), without a second copy in memory."""
        if not self.has_adapter:
            yield
            return
        with self.model.disable_adapter():
            yield


def load_model(model: str, adapter: AdapterSource | None = None) -> LoadedModel:
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging  # ftod draws its own progress

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    if Path(model).is_dir():
        # A truncated model.safetensors or tokenizer.json: say so before transformers fails
        # on it with an error of its own libraries'.
        check_model_files(Path(model))
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=offline)
    except Exception as error:  # the tokenizers library raises bare Exception on bad files
        raise InputError(f"cannot load the tokenizer of {model}: {error}") from error
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(
            f"{model}'s tokenizer has no chat template; evals render conversations with it"
        )
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    cuda = torch.cuda.is_available()
    dtype = (
        (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
        if cuda
        else torch.float32
    )
    try:
        base: Any = AutoModelForCausalLM.from_pretrained(
            model, local_files_only=offline, dtype=dtype
        )
    except (OSError, ValueError, SafetensorError) as error:
        raise InputError(f"cannot load the model {model}: {error}") from error
    base.to(torch.device("cuda" if cuda else "cpu"))
    base.eval()
    if adapter is None:
        return LoadedModel(base, tokenizer, model, has_adapter=False)
    from peft import PeftModel

    check_model_files(adapter.path)
    try:
        wrapped = PeftModel.from_pretrained(base, str(adapter.path), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as error:
        first = str(error).strip().splitlines()
        detail = next((line.strip() for line in first if "size mismatch" in line), "")
        hidden = getattr(base.config, "hidden_size", None)
        raise InputError(
            f"adapter {adapter.label} does not fit {model} (hidden size {hidden}); it was "
            f"trained on {adapter.base_model or 'another model'}, not {model}"
            + (f": {detail}" if detail else ""),
            title="Adapter for another model",
        ) from error
    wrapped.eval()
    return LoadedModel(wrapped, tokenizer, model, has_adapter=True)


# -- the checkpoint ------------------------------------------------------------------------------


def read_checkpoint(path: Path, lines: set[int] | None = None) -> dict[int, EvalOutput]:
    """Finished outputs of a partial eval; a torn last line (a crash mid-write) is dropped."""
    done: dict[int, EvalOutput] = {}
    for number, raw in enumerate(finished_lines(path), start=1):
        if not raw.strip():
            continue
        try:
            record = orjson.loads(raw)
            line = int(record["line"])
            output = EvalOutput(
                line=line,
                output=str(record["output"]),
                input_tokens=record.get("input_tokens"),
                output_tokens=record.get("output_tokens"),
                latency_s=record.get("latency_s"),
                finish_reason=record.get("finish_reason"),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise InputError(
                f"{path}: line {number} is not a finished output ({error}); delete the file "
                "to start over"
            ) from error
        if lines is not None and line not in lines:
            raise InputError(
                f"{path}: line {number} is for dataset line {line}, which is not in this eval "
                "set; the partial file belongs to another eval; delete it to start over"
            )
        done[line] = output
    return done


def _checkpoint_line(output: EvalOutput) -> bytes:
    return (
        orjson.dumps(
            {
                "line": output.line,
                "output": output.output,
                "input_tokens": output.input_tokens,
                "output_tokens": output.output_tokens,
                "latency_s": output.latency_s,
                "finish_reason": output.finish_reason,
            }
        )
        + b"\n"
    )


def _append(path: Path, outputs: Sequence[EvalOutput]) -> None:
    append_durably(path, (_checkpoint_line(output) for output in outputs))


# -- generation ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Encoded:
    line: int
    input_ids: tuple[int, ...]


def encode(loaded: LoadedModel, prompt: PromptSpec, example: EvalExample) -> Encoded:
    messages = input_messages(prompt, example.messages)
    text = loaded.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False
    )
    ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
    return Encoded(example.line, tuple(int(token) for token in ids))


def _eos_ids(loaded: LoadedModel) -> set[int]:
    found: set[int] = set()
    configured = getattr(loaded.model.generation_config, "eos_token_id", None)
    for value in configured if isinstance(configured, list) else [configured]:
        if isinstance(value, int):
            found.add(value)
    if isinstance(loaded.tokenizer.eos_token_id, int):
        found.add(loaded.tokenizer.eos_token_id)
    return found


def _generate_batch(
    loaded: LoadedModel,
    batch: Sequence[Encoded],
    *,
    max_new_tokens: int,
    temperature: float,
    stop: Sequence[str],
) -> list[EvalOutput]:
    """One left-padded batch through `model.generate` (KV cache on)."""
    import torch
    from transformers import GenerationConfig

    tokenizer = loaded.tokenizer
    pad = int(tokenizer.pad_token_id)
    width = max(len(item.input_ids) for item in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        if item.input_ids:
            ids[row, width - len(item.input_ids) :] = torch.tensor(item.input_ids)
            mask[row, width - len(item.input_ids) :] = 1
    device = next(loaded.model.parameters()).device
    eos = _eos_ids(loaded)
    sampling = temperature > 0
    settings: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": sampling,
        "use_cache": True,
        "pad_token_id": pad,
        "eos_token_id": sorted(eos) or None,
    }
    if sampling:
        settings["temperature"] = temperature
    if stop:
        settings["stop_strings"] = list(stop)
    config = GenerationConfig(**settings)  # type: ignore[no-untyped-call]
    started = time.perf_counter()
    with torch.inference_mode():
        generated = loaded.model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            generation_config=config,
            tokenizer=tokenizer if stop else None,
        )
    latency = (time.perf_counter() - started) / len(batch)
    outputs = []
    for row, item in enumerate(batch):
        new = [int(token) for token in generated[row, width:].tolist()]
        end, reason, counted = len(new), "length", len(new)
        for index, token in enumerate(new):
            if token in eos:
                end, reason, counted = index, "eos", index + 1
                break
            if token == pad:  # finished early (a stop string) and padded afterwards
                end, reason, counted = index, "eos", index
                break
        text = tokenizer.decode(new[:end], skip_special_tokens=True)
        cuts = [text.find(s) for s in stop if s in text]
        if cuts:
            text, reason = text[: min(cuts)], "stop"
        elif reason == "length" and counted < max_new_tokens:
            reason = "eos"
        outputs.append(
            EvalOutput(
                line=item.line,
                output=text,
                input_tokens=len(item.input_ids),
                output_tokens=counted,
                latency_s=latency,
                finish_reason=reason,
            )
        )
    return outputs


def generate_with(
    loaded: LoadedModel,
    prompt: PromptSpec,
    examples: Sequence[EvalExample],
    *,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    progress: Progress | None = None,
    checkpoint_file: Path | None = None,
    seed: int = 0,
) -> list[EvalOutput]:
    """Outputs for every example (sorted by line); finished lines in the checkpoint are kept."""
    if batch_size < 1:
        raise InputError(f"--batch-size must be ≥ 1, not {batch_size}")
    limit = max_new_tokens if max_new_tokens is not None else prompt.max_new_tokens
    if limit < 1:
        raise InputError(f"--max-new-tokens must be ≥ 1, not {limit}")
    lines = {example.line for example in examples}
    done = read_checkpoint(checkpoint_file, lines) if checkpoint_file is not None else {}
    todo = [encode(loaded, prompt, example) for example in examples if example.line not in done]
    context = getattr(getattr(loaded.model, "config", None), "max_position_embeddings", None)
    if isinstance(context, int) and context > 0:
        too_long = sorted(item.line for item in todo if len(item.input_ids) >= context)
        if too_long:
            shown = ", ".join(map(str, too_long[:10])) + (" …" if len(too_long) > 10 else "")
            raise InputError(
                f"{len(too_long)} examples do not fit the model's context of {context} tokens "
                f"with this prompt (lines {shown}); shorten the prompt or evaluate a split "
                "without them"
            )
    # Longest first: padding stays small within a batch, and running out of memory shows in
    # the first batch rather than after an hour.
    todo.sort(key=lambda item: (-len(item.input_ids), item.line))
    total = len(examples)
    if progress is not None:
        progress(len(done), total)
    if prompt.temperature > 0:
        import torch

        torch.manual_seed(seed)
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        try:
            finished = _generate_batch(
                loaded,
                batch,
                max_new_tokens=limit,
                temperature=prompt.temperature,
                stop=prompt.stop,
            )
        except RuntimeError as error:
            if type(error).__name__ != "OutOfMemoryError":
                raise
            kept = ""
            if checkpoint_file is not None:
                kept = f"; the {len(done)} finished outputs are kept in {checkpoint_file}"
            raise InputError(
                f"out of memory generating a batch of {len(batch)} (inputs up to "
                f"{len(batch[0].input_ids)} tokens, max_new_tokens {limit}){kept}; rerun with "
                f"--resume and a smaller --batch-size (e.g. {max(1, len(batch) // 2)})",
                title="Out of memory",
            ) from error
        if checkpoint_file is not None:
            _append(checkpoint_file, finished)
        done.update((output.line, output) for output in finished)
        if progress is not None:
            progress(len(done), total)
    return [done[line] for line in sorted(done)]


def generate_outputs(
    model_path: str,
    adapter_path: Path | None,
    prompt: PromptSpec,
    examples: Sequence[EvalExample],
    *,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    progress: Progress | None = None,
    checkpoint_file: Path | None = None,
) -> list[EvalOutput]:
    """Load the model (+ adapter, checked against it) and generate every example's output."""
    model = resolve_model(model_path)
    adapter = resolve_adapter(None, str(adapter_path)) if adapter_path is not None else None
    if adapter is not None:
        check_adapter(model, adapter)
    loaded = load_model(model, adapter)
    return generate_with(
        loaded,
        prompt,
        examples,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        progress=progress,
        checkpoint_file=checkpoint_file,
    )


# -- storing -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GeneratedEval:
    outcome: ImportOutcome
    generated: int
    """Outputs generated by this command (the rest came from the partial file)."""
    resumed: int

    def as_json(self) -> dict[str, Any]:
        payload = self.outcome.as_json()
        payload["generated"] = self.generated
        payload["resumed"] = self.resumed
        return payload


def evals_dir(workspace: Workspace) -> Path:
    return workspace.root / "evals"


def _file_stem(label: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", label)
    if safe != label:
        safe += "-" + hashlib.sha256(label.encode()).hexdigest()[:8]
    return safe


def partial_path(workspace: Workspace, label: str) -> Path:
    return evals_dir(workspace) / f"{_file_stem(label)}.partial.jsonl"


def _store(
    datasets: DatasetRepository,
    evals: EvalRepository,
    workspace: Workspace,
    chosen: EvalSet,
    outputs: Sequence[EvalOutput],
    *,
    label: str,
    scorers: Sequence[Scorer],
    model: str,
    adapter: str | None,
    prompt: PromptRecord,
    max_new_tokens: int,
    partial: Path,
) -> ImportOutcome:
    """Write the outputs file, then store it as `eval import` would; the partial file goes
    only once the store has the eval."""
    final = evals_dir(workspace) / f"{_file_stem(label)}.jsonl"
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_replace(final) as handle:
        for output in outputs:
            handle.write(_checkpoint_line(output))
    hit_limit = sum(1 for output in outputs if output.finish_reason == "length")
    notes = (
        [
            f"{hit_limit} of {len(outputs)} outputs stopped at max_new_tokens ({max_new_tokens}) "
            "without finishing"
        ]
        if hit_limit
        else []
    )
    try:
        outcome = store_outputs(
            evals,
            chosen,
            final,
            label,
            scorers,
            source=SOURCE_GENERATE,
            model=model,
            adapter=adapter,
            prompt=prompt.ref,
            extra_notes=notes,
        )
    except BaseException:
        final.unlink(missing_ok=True)
        raise
    partial.unlink(missing_ok=True)
    _meta_path(partial).unlink(missing_ok=True)
    return outcome


def _meta_path(partial: Path) -> Path:
    return partial.with_name(partial.name.removesuffix(".jsonl") + ".meta.json")


def _check_partial(
    partial: Path,
    resume: bool,
    label: str,
    settings: Mapping[str, Any],
    reader: Callable[[Path], Sized] = read_checkpoint,
) -> int:
    """How many records a resumed run keeps (`reader` parses the partial file); refuses a
    partial file made with other settings (a resumed eval must not mix two models' or two
    prompts' outputs)."""
    meta = _meta_path(partial)
    if partial.exists() and not resume:
        raise InputError(
            f"a crashed or interrupted eval {label!r} left {partial}; pass --resume to "
            "continue it, or delete the file to start over"
        )
    if partial.exists() and meta.is_file():
        recorded = _read_json(meta)
        changed = sorted(key for key in settings if recorded.get(key) != settings[key])
        if changed:
            listed = ", ".join(
                f"{key} {recorded.get(key)!r} → {settings[key]!r}" for key in changed
            )
            raise InputError(
                f"--resume: {partial} was generated with other settings ({listed}); rerun "
                "with the original settings, or delete the file to start over"
            )
    return len(reader(partial)) if partial.exists() else 0


def _start_partial(partial: Path, settings: Mapping[str, Any]) -> None:
    """Record the settings beside a new partial file (once the model has loaded)."""
    if partial.exists():
        return
    meta = _meta_path(partial)
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps(dict(settings), sort_keys=True), encoding="utf-8")


def _settings(
    model: str,
    adapter: AdapterSource | None,
    prompt: PromptRecord,
    data: EvalSet,
    max_new_tokens: int | None,
) -> dict[str, Any]:
    return {
        "model": model,
        "adapter": adapter.label if adapter else None,
        "prompt": prompt.ref,
        "prompt_sha256": prompt.sha256,
        "data": data.ref,
        "max_new_tokens": max_new_tokens or prompt.max_new_tokens,
    }


def run_eval(
    workspace: Workspace,
    datasets: DatasetRepository,
    evals: EvalRepository,
    prompts: PromptRepository,
    *,
    model: str,
    adapter: str | None,
    prompt_ref: str,
    data_ref: str,
    label: str,
    scorer_specs: Sequence[str | Mapping[str, Any]] | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> GeneratedEval:
    """Check every input, generate (resumably) into the partial file, then store the eval."""
    label = check_label(evals, label)
    scorers = build_scorers(scorer_specs or None)
    prompt = prompts.prompt(prompt_ref)
    chosen = load_eval_set(datasets, evals, data_ref)
    model_name = resolve_model(model)
    source = resolve_adapter(workspace, adapter) if adapter else None
    if source is not None:
        check_adapter(model_name, source)
    partial = partial_path(workspace, label)
    settings = _settings(model_name, source, prompt, chosen, max_new_tokens)
    resumed = _check_partial(partial, resume, label, settings)
    loaded = load_model(model_name, source)
    _start_partial(partial, settings)
    spec = PromptSpec.of(prompt)
    outputs = generate_with(
        loaded,
        spec,
        chosen.examples,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        progress=progress,
        checkpoint_file=partial,
    )
    outcome = _store(
        datasets,
        evals,
        workspace,
        chosen,
        outputs,
        label=label,
        scorers=scorers,
        model=model_name,
        adapter=source.label if source else None,
        prompt=prompt,
        max_new_tokens=max_new_tokens or prompt.max_new_tokens,
        partial=partial,
    )
    return GeneratedEval(outcome, len(outputs) - resumed, resumed)


@dataclass(frozen=True, slots=True)
class CompareRunOutcome:
    baseline: GeneratedEval
    candidate: GeneratedEval
    comparison: ComparisonOutcome


def run_compare(
    workspace: Workspace,
    datasets: DatasetRepository,
    evals: EvalRepository,
    prompts: PromptRepository,
    *,
    model: str,
    adapter: str,
    baseline_prompt: str,
    candidate_prompt: str,
    data_ref: str,
    label_prefix: str,
    scorer_specs: Sequence[str | Mapping[str, Any]] | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    resume: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> CompareRunOutcome:
    """Baseline (base + its prompt) and candidate (base + adapter + its prompt) from one copy
    of the base weights: the adapter is toggled off with peft `disable_adapter`."""
    base_label = check_label(evals, f"{label_prefix.strip()}-base")
    candidate_label = check_label(evals, f"{label_prefix.strip()}-candidate")
    scorers = build_scorers(scorer_specs or None)
    prompt_a, prompt_b = prompts.prompt(baseline_prompt), prompts.prompt(candidate_prompt)
    chosen = load_eval_set(datasets, evals, data_ref)
    model_name = resolve_model(model)
    source = resolve_adapter(workspace, adapter)
    check_adapter(model_name, source)
    partial_a = partial_path(workspace, base_label)
    partial_b = partial_path(workspace, candidate_label)
    settings_a = _settings(model_name, None, prompt_a, chosen, max_new_tokens)
    settings_b = _settings(model_name, source, prompt_b, chosen, max_new_tokens)
    resumed_a = _check_partial(partial_a, resume, base_label, settings_a)
    resumed_b = _check_partial(partial_b, resume, candidate_label, settings_b)
    loaded = load_model(model_name, source)
    _start_partial(partial_a, settings_a)
    _start_partial(partial_b, settings_b)

    def stage(name: str) -> Progress | None:
        if progress is None:
            return None
        return lambda done, total: progress(name, done, total)

    outputs_b = generate_with(
        loaded,
        PromptSpec.of(prompt_b),
        chosen.examples,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        progress=stage(candidate_label),
        checkpoint_file=partial_b,
    )
    with loaded.adapter_disabled():
        outputs_a = generate_with(
            loaded,
            PromptSpec.of(prompt_a),
            chosen.examples,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            progress=stage(base_label),
            checkpoint_file=partial_a,
        )
    common: dict[str, Any] = {"scorers": scorers, "model": model_name}
    outcome_a = _store(
        datasets,
        evals,
        workspace,
        chosen,
        outputs_a,
        label=base_label,
        adapter=None,
        prompt=prompt_a,
        max_new_tokens=max_new_tokens or prompt_a.max_new_tokens,
        partial=partial_a,
        **common,
    )
    outcome_b = _store(
        datasets,
        evals,
        workspace,
        chosen,
        outputs_b,
        label=candidate_label,
        adapter=source.label,
        prompt=prompt_b,
        max_new_tokens=max_new_tokens or prompt_b.max_new_tokens,
        partial=partial_b,
        **common,
    )
    comparison = compare_evals(evals, base_label, candidate_label)
    return CompareRunOutcome(
        GeneratedEval(outcome_a, len(outputs_a) - resumed_a, resumed_a),
        GeneratedEval(outcome_b, len(outputs_b) - resumed_b, resumed_b),
        comparison,
    )
