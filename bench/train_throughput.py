"""Training throughput: ftod's trainer against TRL `SFTTrainer` (defaults and tuned).

One call, each trainer in its own process so memory and compile state never leak:

1. builds, under `--work-dir` (default: a fresh temp dir), an offline byte-level BPE
   tokenizer with a chat template, a random-initialised Llama-shaped model saved with it,
   and seeded synthetic chat data (system + user + assistant, a third multi-turn) whose
   token lengths follow a clipped lognormal (mean ~600, tail to 2048 for `1b`);
2. adds the data to a real ftod workspace (`add_dataset`), prepares a run (`prepare_run`)
   and runs `python -m core.train RUN_DIR` in the foreground, with monitoring on and with
   `FTOD_TRAIN_MONITORING=off`;
3. runs TRL `SFTTrainer` as shipped (no packing, padding to the longest row, gradient
   checkpointing, fp32 weights under bf16 autocast) and tuned (bfd packing, padding-free,
   no gradient checkpointing, bf16 weights), both loss on assistant tokens only, in a
   worker process each (`--worker NAME --spec FILE`).

Every trainer gets LoRA r=16, alpha=32, dropout 0 on the seven projections, the same
rows, learning rate, constant schedule and seed, `--warmup` + `--steps` optimizer steps,
and the same real-token budget per step. Reported per trainer: real (non-pad) tokens/s
over the timed steps, MFU, peak memory, loss and grad norm at the last step. A human table
goes to stderr and the figures to stdout as a final JSON line.

Timing: ftod's timed steps come from its own per-step clock in events.jsonl; TRL's from
two synchronised timestamps in a callback. With monitoring off ftod writes only its start
and end events, so the monitoring overhead compares the start-to-end span of both runs.
`--repeats N` runs every trainer N times round-robin and reports the median run.
`--trainers` picks a subset; a later call with the same `--work-dir` and shape reuses the
model and data, so a GPU run can be split across calls.

Without CUDA the default shape is `tiny` (hidden 256, 4 layers, seq 512, 2 rows a step,
5 + 20 steps, so that the four trainers fit in a few minutes on two shared cores), in fp32
on the CPU with one OpenMP thread per trainer (`--threads`), with MFU null: it checks the
harness end to end and does not measure the GPU targets.

Usage: python bench/train_throughput.py [--shape 1b|tiny] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SEED = 0
LEARNING_RATE = 2e-4
LORA_R = 16
LORA_ALPHA = 32
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TOKENIZER_VOCAB = 8000
SPECIAL_TOKENS = ("<|pad|>", "<|bos|>", "<|eot|>", "<|system|>", "<|user|>", "<|assistant|>")
# The assistant turn (content and its end-of-turn token) sits inside the generation block,
# so TRL's assistant mask and ftod's assistant spans select exactly the same tokens.
CHAT_TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'assistant' -%}"
    "<|assistant|>{% generation %}{{ m['content'] }}<|eot|>{% endgeneration %}"
    "{%- else -%}"
    "<|{{ m['role'] }}|>{{ m['content'] }}<|eot|>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)
# Dense bf16 tensor-core peaks (no sparsity), by the device name NVML reports.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
TRAINER_NAMES = ("ftod", "ftod_monitoring_off", "trl_default", "trl_tuned")
GPU_TARGETS = {"ftod_over_trl_tuned": 1.3, "mfu": 0.40, "monitoring_overhead_pct": 1.0}


@dataclass(frozen=True, slots=True)
class Shape:
    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    seq: int
    warmup: int
    steps: int
    rows_per_step: int
    """Packed rows of `seq` tokens per optimizer step (ftod and TRL tuned)."""
    mean_tokens: int
    min_tokens: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def total_steps(self) -> int:
        return self.warmup + self.steps


SHAPES = {
    # Llama-3.2-1B: 1.24B parameters with tied embeddings.
    "1b": Shape("1b", 2048, 16, 32, 8, 8192, 128256, 2048, 20, 200, 4, 600, 32),
    # Lengths scaled with the sequence (512 / 2048) so packing behaves alike.
    "tiny": Shape("tiny", 256, 4, 4, 2, 688, 8192, 512, 5, 20, 2, 150, 24),
}


# -- synthetic data ------------------------------------------------------------------------
SYLLABLES = (*(c + v for c in "kstnmrlpdgvbfhj" for v in "aeiou"), "mar", "sol", "ung")


def pseudo_words(count: int, rng: Any) -> list[str]:
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < count:
        parts = rng.choice(SYLLABLES, size=int(rng.integers(1, 4)))
        word = "".join(parts)
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


@dataclass(slots=True)
class WordSampler:
    words: list[str]
    weights: Any
    rng: Any

    def text(self, n_words: int) -> str:
        picked = self.rng.choice(len(self.words), size=max(1, n_words), p=self.weights)
        out: list[str] = []
        # Sentences of a few to twenty words, so punctuation tokens appear as in real chat.
        until_stop = int(self.rng.integers(4, 20))
        for index in picked:
            out.append(self.words[index])
            until_stop -= 1
            if until_stop == 0:
                out[-1] += "."
                until_stop = int(self.rng.integers(4, 20))
        return " ".join(out)


def make_sampler(rng: Any) -> WordSampler:
    import numpy as np

    words = pseudo_words(3000, rng)
    # Zipf–Mandelbrot word frequencies: a few very common words, a long tail.
    ranks = np.arange(len(words), dtype=np.float64)
    weights = 1.0 / (ranks + 2.7) ** 1.07
    return WordSampler(words, weights / weights.sum(), rng)


def build_tokenizer(folder: Path, sampler: WordSampler) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [sampler.text(60) for _ in range(4000)] + [" ".join(sampler.words)]
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer, bos_token="<|bos|>", eos_token="<|eot|>", pad_token="<|pad|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(folder))
    return fast


def target_lengths(shape: Shape, count: int, rng: Any) -> list[int]:
    """Clipped lognormal token lengths whose clipped mean is `shape.mean_tokens`."""
    import numpy as np

    sigma = 0.8
    mu = math.log(shape.mean_tokens) - sigma**2 / 2
    normal = rng.standard_normal(count)
    for _ in range(6):
        # Clipping at both ends moves the mean; a few fixed-point steps put it back.
        lengths = np.clip(np.exp(mu + sigma * normal), shape.min_tokens, shape.seq)
        mu += math.log(shape.mean_tokens / float(lengths.mean()))
    lengths = np.clip(np.exp(mu + sigma * normal), shape.min_tokens, shape.seq)
    return [int(x) for x in lengths]


def conversation(budget: int, sampler: WordSampler, words_per_token: float) -> list[dict[str, str]]:
    rng = sampler.rng
    exchanges = int(rng.choice([1, 2, 3], p=[0.67, 0.22, 0.11]))
    specials = 2 * (1 + 2 * exchanges)
    content = max(3 * exchanges + 2, budget - specials)
    system = max(2, int(content * rng.uniform(0.05, 0.15)))
    rest = content - system
    messages = [{"role": "system", "content": sampler.text(round(system * words_per_token))}]
    shares = rng.dirichlet([2.0] * exchanges)
    for share in shares:
        turn = max(2, int(rest * share))
        answer = max(1, int(turn * rng.beta(4, 6)))
        question = max(1, turn - answer)
        messages.append(
            {"role": "user", "content": sampler.text(round(question * words_per_token))}
        )
        messages.append(
            {"role": "assistant", "content": sampler.text(round(answer * words_per_token))}
        )
    return messages


def token_length(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def synthetic_rows(
    shape: Shape, count: int, sampler: WordSampler, tokenizer: Any
) -> list[dict[str, Any]]:
    probe = sampler.text(2000)
    words_per_token = 2000 / len(tokenizer(probe, add_special_tokens=False)["input_ids"])
    rows: list[dict[str, Any]] = []
    for budget in target_lengths(shape, count, sampler.rng):
        messages = conversation(budget, sampler, words_per_token)
        length = token_length(tokenizer, messages)
        # Never longer than a row: both trainers would truncate such an example, each
        # its own way, and the comparison would no longer see the same tokens.
        while length > shape.seq:
            last = messages[-1]["content"].split(" ")
            drop = max(1, int((length - shape.seq) * words_per_token * 1.2))
            messages[-1]["content"] = " ".join(last[: max(1, len(last) - drop)])
            length = token_length(tokenizer, messages)
        rows.append({"messages": messages})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@dataclass(frozen=True, slots=True)
class DataFacts:
    examples: int
    mean_tokens: float
    p50_tokens: int
    p95_tokens: int
    max_tokens: int
    assistant_token_share: float
    packed_rows: int
    real_tokens_per_packed_row: float
    trl_default_batch_examples: int


def data_facts(shape: Shape, rows: list[dict[str, Any]], tokenizer: Any) -> DataFacts:
    """Token statistics with ftod's own tokenisation and packing, and the TRL batch size
    that gives TRL-as-shipped (one example per row) the same real tokens per step."""
    from core.training.data import ChatTokenizer, pack

    examples = ChatTokenizer(tokenizer, shape.seq).tokenize_all(rows)
    lengths = sorted(len(e.input_ids) for e in examples)
    total = sum(lengths)
    packed = pack(examples, shape.seq, tokenizer.pad_token_id)
    per_row = sum(r.real_tokens for r in packed) / len(packed)
    per_step = shape.rows_per_step * per_row
    mean = total / len(lengths)
    return DataFacts(
        examples=len(lengths),
        mean_tokens=round(mean, 1),
        p50_tokens=lengths[len(lengths) // 2],
        p95_tokens=lengths[int(len(lengths) * 0.95)],
        max_tokens=lengths[-1],
        assistant_token_share=round(sum(e.loss_tokens for e in examples) / total, 3),
        packed_rows=len(packed),
        real_tokens_per_packed_row=round(per_row, 1),
        trl_default_batch_examples=max(1, round(per_step / mean)),
    )


# -- model -------------------------------------------------------------------------------
def build_model(folder: Path, shape: Shape, tokenizer: Any, bf16: bool) -> dict[str, int]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        head_dim=shape.head_dim,
        max_position_embeddings=max(shape.seq, 8192),
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(SEED)
    previous = torch.get_default_dtype()
    # Built directly in the dtype it is saved in: a 1B model in fp32 first would double
    # the host memory this step needs.
    torch.set_default_dtype(torch.bfloat16 if bf16 else torch.float32)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    total = sum(p.numel() for p in model.parameters())
    del model
    return {"parameters": total}


def parameter_counts(shape: Shape, parameters: int) -> dict[str, int]:
    """Frozen matmul weights and LoRA weights, for the FLOP count.

    With tied embeddings the one vocabulary matrix is counted once, as the LM head (the
    input lookup costs no FLOPs); LoRA adds r·(in + out) per adapted projection.
    """
    d, kv = shape.hidden, shape.kv_heads * shape.head_dim
    d_attn = shape.heads * shape.head_dim
    shapes = {
        "q_proj": (d, d_attn),
        "k_proj": (d, kv),
        "v_proj": (d, kv),
        "o_proj": (d_attn, d),
        "gate_proj": (d, shape.intermediate),
        "up_proj": (d, shape.intermediate),
        "down_proj": (shape.intermediate, d),
    }
    lora = shape.layers * sum(LORA_R * (i + o) for i, o in shapes.values())
    return {"n_frozen": parameters, "n_lora": lora, "d_attn": d_attn}


def flops_per_token(shape: Shape, counts: dict[str, int]) -> float:
    """4·N_frozen (forward + input gradients) + 6·N_lora (and weight gradients)
    + 12·L·d_attn·T attention, with T the sequence length (the issue's formula)."""
    return float(
        4 * counts["n_frozen"]
        + 6 * counts["n_lora"]
        + 12 * shape.layers * counts["d_attn"] * shape.seq
    )


# -- child processes ---------------------------------------------------------------------
class NvmlPeak:
    """Device memory used (NVML) polled every 50 ms while a child runs, minus what was in
    use before it started: one yardstick for every trainer, monitoring on or off."""

    def __init__(self) -> None:
        self.available = False
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle: Any = None
        with contextlib.suppress(Exception):
            import pynvml

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self.available = True

    def _used(self) -> int:
        import pynvml

        return int(pynvml.nvmlDeviceGetMemoryInfo(self._handle).used)

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(Exception):
                self.peak = max(self.peak, self._used())

    def __enter__(self) -> NvmlPeak:
        if self.available:
            self.baseline = self.peak = self._used()
            self._thread = threading.Thread(target=self._poll, name="nvml-peak", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    @property
    def peak_delta(self) -> int | None:
        return self.peak - self.baseline if self.available else None


@dataclass(slots=True)
class ChildOutcome:
    returncode: int
    wall_s: float
    max_rss_mb: float
    nvml_peak_bytes: int | None
    log: Path
    load_before: float
    load_after: float

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def child_env(work: Path, monitoring: bool = True, threads: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HF_DATASETS_CACHE": str(work / "cache" / "datasets"),
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
            "GIT_OPTIONAL_LOCKS": "0",
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
            ),
        }
    )
    env.pop("FTOD_TRAIN_MONITORING", None)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    if not monitoring:
        env["FTOD_TRAIN_MONITORING"] = "off"
    return env


def run_child(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> ChildOutcome:
    load_before = os.getloadavg()[0]
    with log.open("wb") as sink, NvmlPeak() as nvml:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink
        )
        # wait4 gives this child's own peak RSS; RUSAGE_CHILDREN would be the maximum over
        # every child so far, i.e. the largest trainer, not this one.
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
    return ChildOutcome(
        process.returncode,
        wall,
        round(usage.ru_maxrss / 1024, 1),
        nvml.peak_delta,
        log,
        load_before,
        os.getloadavg()[0],
    )


def outcome_figures(outcome: ChildOutcome) -> dict[str, Any]:
    return {
        "returncode": outcome.returncode,
        "process_wall_s": round(outcome.wall_s, 2),
        "peak_rss_mb": outcome.max_rss_mb,
        "peak_nvml_used_bytes": outcome.nvml_peak_bytes,
        "load_1min_before_after": [outcome.load_before, outcome.load_after],
    }


# -- ftod -------------------------------------------------------------------------------
@dataclass(slots=True)
class FtodSetup:
    workspace: Any
    repository: Any
    ref: str


def ftod_workspace(work: Path, data: Path) -> FtodSetup:
    from core.datasets import add_dataset
    from store.datasets import DatasetRepository
    from store.db import Store
    from store.workspace import init_workspace

    workspace, _ = init_workspace(work / "project")
    repository = DatasetRepository(Store.open(workspace))
    outcome = add_dataset(workspace, repository, data, "bench")
    return FtodSetup(workspace, repository, outcome.version.ref)


def ftod_prepare(setup: FtodSetup, shape: Shape, model_dir: Path, label: str) -> Path:
    from core.runs.config import parse_run_config
    from core.runs.launch import prepare_run

    never = shape.total_steps + 1
    config = parse_run_config(
        {
            "name": f"bench-{label}",
            "base_model": str(model_dir),
            "dataset": setup.ref,
            "splits": {"train": None, "val": None},
            "lora": {
                "r": LORA_R,
                "alpha": LORA_ALPHA,
                "dropout": 0.0,
                "target_modules": list(TARGET_MODULES),
            },
            "train": {
                "max_steps": shape.total_steps,
                "batch_size": shape.rows_per_step,
                "grad_accum": 1,
                "max_seq_len": shape.seq,
                "packing": True,
                "lr": LEARNING_RATE,
                "scheduler": "constant",
                "warmup": 0,
                "eval_every": never,
                "save_every": never,
                "precision": "auto",
                "seed": SEED,
                "log_every": 1,
            },
        }
    )
    # prepare_run records the git state of the current directory; from the work dir there
    # is none, so the benchmark never touches the repository's index.
    with contextlib.chdir(setup.workspace.root.parent):
        return Path(prepare_run(setup.workspace, setup.repository, config).paths.root)


def ftod_train(run_dir: Path, work: Path, monitoring: bool, threads: int | None) -> ChildOutcome:
    return run_child(
        [sys.executable, "-m", "core.train", str(run_dir)],
        child_env(work, monitoring, threads),
        run_dir,
        run_dir / "bench-trainer.log",
    )


def _events(run_dir: Path) -> list[dict[str, Any]]:
    from core.runs.rundir import iter_records

    return list(iter_records(run_dir / "events.jsonl"))


def ftod_figures(run_dir: Path, shape: Shape, outcome: ChildOutcome, cuda: bool) -> dict[str, Any]:
    """Figures of one ftod run from its events.jsonl.

    Timed steps: the trainer's own per-step clock, elapsed = tokens / tokens_per_s of each
    step (CUDA events between step ends on the GPU, the host clock between step ends on
    the CPU). Span: end event minus start event (the same W+T steps and the adapter write
    in both modes), the only clock a run with monitoring off leaves, so the monitoring
    overhead is compared on it.
    """
    events = _events(run_dir)
    train = {int(e["step"]): e for e in events if e.get("type") == "train"}
    starts = [e for e in events if e.get("type") == "start"]
    ends = [e for e in events if e.get("type") == "end"]
    result: dict[str, Any] = outcome_figures(outcome) | {
        "state": ends[-1].get("state") if ends else None,
        "run_dir": str(run_dir),
    }
    if starts and ends:
        result["span_s"] = round(float(ends[-1]["time"]) - float(starts[-1]["time"]), 3)
    if ends and ends[-1].get("state") != "succeeded":
        result["error"] = ends[-1].get("message")
    if outcome.returncode != 0 and "error" not in result:
        result["error"] = outcome.tail()
    if not train:
        return result
    total = shape.total_steps
    timed = [train[s] for s in range(shape.warmup + 1, total + 1) if s in train]
    if len(timed) != shape.steps:
        result["error"] = f"{len(timed)} of {shape.steps} timed steps logged"
        return result
    tokens = sum(int(e["tokens"]) for e in timed)
    seconds = sum(int(e["tokens"]) / float(e["tokens_per_s"]) for e in timed)
    # Cross-check with the event timestamps: on the CPU a step's event is written after
    # the next step ran, on the GPU when that step's CUDA event completed.
    first = train.get(shape.warmup if cuda else shape.warmup - 1)
    wall = float(train[total]["time"]) - float(first["time"]) if first else None
    window = [train[s]["loss"] for s in range(total - loss_window(shape) + 1, total + 1)]
    result.update(
        {
            "timed_tokens": tokens,
            "timed_s": round(seconds, 3),
            "timed_s_from_event_times": round(wall, 3) if wall is not None else None,
            "tokens_per_s": round(tokens / seconds, 1),
            "median_step_tokens_per_s": round(
                statistics.median(float(e["tokens_per_s"]) for e in timed), 1
            ),
            "real_tokens_per_step": round(tokens / len(timed), 1),
            "all_steps_tokens": sum(int(train[s]["tokens"]) for s in sorted(train)),
            "loss_last_step": float(train[total]["loss"]),
            "loss_last_window": statistics.fmean(float(x) for x in window),
            "grad_norm_last_step": float(train[total]["grad_norm"]),
            "peak_allocated_bytes": max_or_none(e.get("mem_peak") for e in train.values()),
            "peak_reserved_bytes": max_or_none(e.get("mem_reserved") for e in train.values()),
        }
    )
    return result


def median_run(done: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run with the median `key` (the upper one of an even count), with every run's
    value beside it."""
    measured = sorted(
        (r for r in done if isinstance(r.get(key), int | float)), key=lambda r: r[key]
    )
    chosen = measured[len(measured) // 2] if measured else done[-1]
    return chosen | {"repeats": len(done), f"{key}_runs": [r.get(key) for r in done]}


def max_or_none(values: Iterator[Any]) -> int | None:
    numbers = [int(v) for v in values if isinstance(v, int | float)]
    return max(numbers) if numbers else None


def loss_window(shape: Shape) -> int:
    return max(5, shape.steps // 10)


def adapter_difference(first: Path, second: Path) -> float | None:
    """Largest absolute difference between two runs' final LoRA weights."""
    from safetensors.torch import load_file

    paths = [run / "adapter" / "adapter_model.safetensors" for run in (first, second)]
    if not all(p.is_file() for p in paths):
        return None
    left, right = (load_file(str(p)) for p in paths)
    if left.keys() != right.keys():
        return None
    return max(float((left[k].float() - right[k].float()).abs().max()) for k in left)


# -- TRL worker --------------------------------------------------------------------------
def trl_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One TRL run, in this worker process; the figures are written to spec['out']."""
    import importlib.util

    import torch
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]

    shape = Shape(**spec["shape"])
    tuned = spec["name"] == "trl_tuned"
    cuda = torch.cuda.is_available()
    total, window = shape.total_steps, loss_window(shape)
    rows = read_jsonl(Path(spec["data"]))
    dataset = Dataset.from_list([{"messages": row["messages"]} for row in rows])
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])

    class Probe(TrainerCallback):
        """Two synchronised timestamps (end of warm-up, end of the last step), the loss
        of the last step exactly (a log forced one step before), and peak memory."""

        def __init__(self) -> None:
            self.marks: dict[int, float] = {}
            self.step_ends: dict[int, float] = {}
            self.logs: list[tuple[int, float, float | None]] = []
            self.peak_allocated: int | None = None
            self.peak_reserved: int | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if cuda:
                torch.cuda.reset_peak_memory_stats()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            step = state.global_step
            if step in (shape.warmup, total):
                if cuda:
                    torch.cuda.synchronize()
                self.marks[step] = time.perf_counter()
            elif not cuda:
                # On the CPU a step is done when it returns, so every step can be timed
                # for free: the median step resists other load on a shared machine.
                self.step_ends[step] = time.perf_counter()
            if step in (total - window, total - 1, total):
                control.should_log = True

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            if logs and "loss" in logs:
                grad = logs.get("grad_norm")
                self.logs.append((state.global_step, float(logs["loss"]), grad))

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if cuda:
                self.peak_allocated = torch.cuda.max_memory_allocated()
                self.peak_reserved = torch.cuda.max_memory_reserved()

    class CountingCollator:
        """Real tokens of every batch, in order: batch i is optimizer step i + 1, whatever
        the data loader fetches ahead."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.real: list[int] = []
            self.slots: list[int] = []

        def __call__(self, examples: list[dict[str, Any]]) -> Any:
            batch = self.inner(examples)
            mask = batch.get("attention_mask")
            slots = int(batch["input_ids"].numel())
            # Padding-free batches carry no mask: every position is a real token.
            self.real.append(int(mask.sum()) if mask is not None else slots)
            self.slots.append(slots)
            return batch

    attn = "sdpa"
    if cuda and importlib.util.find_spec("flash_attn") is not None:
        attn = "flash_attention_2"
    common: dict[str, Any] = {
        "output_dir": spec["output_dir"],
        "max_steps": total,
        "learning_rate": LEARNING_RATE,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "seed": SEED,
        "data_seed": SEED,
        # TRL truncates at 1024 by default; every example fits `seq`, so this keeps the
        # rows identical to ftod's rather than changing TRL's speed.
        "max_length": shape.seq,
        "assistant_only_loss": True,
        "report_to": "none",
        "save_strategy": "no",
        "eval_strategy": "no",
        "disable_tqdm": True,
        # TRL's default is bf16 autocast; on the CPU every trainer runs fp32 instead.
        "bf16": cuda,
    }
    settings: dict[str, Any]
    if tuned:
        settings = {
            "packing": True,
            "packing_strategy": "bfd",
            "padding_free": True,
            "gradient_checkpointing": False,
            "per_device_train_batch_size": shape.rows_per_step,
            "model_init_kwargs": {
                "dtype": "bfloat16" if cuda else "float32",
                "attn_implementation": attn,
            },
        }
    else:
        settings = {"per_device_train_batch_size": spec["default_batch_examples"]}
    args = SFTConfig(**common, **settings)
    probe = Probe()
    trainer = SFTTrainer(
        model=spec["model"],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=LORA_R,
            lora_alpha=LORA_ALPHA,
            lora_dropout=0.0,
            target_modules=list(TARGET_MODULES),
            task_type="CAUSAL_LM",
        ),
        callbacks=[probe],
    )
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    trainer.train()

    timed_real = sum(counter.real[shape.warmup : total])
    timed_slots = sum(counter.slots[shape.warmup : total])
    seconds = probe.marks[total] - probe.marks[shape.warmup]
    ends = probe.step_ends | probe.marks
    step_rates = [
        counter.real[step - 1] / (ends[step] - ends[step - 1])
        for step in range(shape.warmup + 1, total + 1)
        if step in ends and step - 1 in ends
    ]
    logs = sorted(probe.logs)
    last = [entry for entry in logs if entry[0] == total]
    # Each logged loss is the mean over the steps since the previous log.
    weighted, previous = 0.0, 0
    for step, loss, _grad in logs:
        if step > total - window:
            weighted += loss * (step - max(previous, total - window))
        previous = step
    model: Any = trainer.model
    return {
        "trl_version": trl.__version__,
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "weights_dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "gradient_checkpointing": bool(args.gradient_checkpointing),
        "packing": bool(args.packing),
        "padding_free": bool(getattr(trainer, "padding_free", args.padding_free)),
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "bf16_autocast": bool(args.bf16),
        "timed_tokens": timed_real,
        "timed_token_slots": timed_slots,
        "padding_share": round(1 - timed_real / timed_slots, 4) if timed_slots else None,
        "timed_s": round(seconds, 3),
        "tokens_per_s": round(timed_real / seconds, 1),
        "median_step_tokens_per_s": (
            round(statistics.median(step_rates), 1) if len(step_rates) == shape.steps else None
        ),
        "real_tokens_per_step": round(timed_real / shape.steps, 1),
        "loss_last_step": last[0][1] if last else None,
        "loss_last_window": weighted / window,
        "grad_norm_last_step": float(last[0][2]) if last and last[0][2] is not None else None,
        "peak_allocated_bytes": probe.peak_allocated,
        "peak_reserved_bytes": probe.peak_reserved,
    }


def run_trl(
    name: str,
    folder: Path,
    shape: Shape,
    model: Path,
    data: Path,
    batch: int,
    threads: int | None,
) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    spec: dict[str, Any] = {
        "name": name,
        "shape": asdict(shape),
        "model": str(model),
        "data": str(data),
        "default_batch_examples": batch,
        "output_dir": str(folder / "output"),
        "out": str(folder / "result.json"),
    }
    spec_path = folder / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    outcome = run_child(
        [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--spec", str(spec_path)],
        child_env(folder.parent, threads=threads),
        folder,
        folder / "worker.log",
    )
    result = outcome_figures(outcome)
    out = Path(spec["out"])
    if outcome.returncode == 0 and out.is_file():
        result.update(json.loads(out.read_text()))
    else:
        result["error"] = outcome.tail()
    return result


# -- report -------------------------------------------------------------------------------
@dataclass(slots=True)
class Device:
    cuda: bool
    description: str
    name: str
    peak_flops: float | None
    extra: dict[str, Any] = field(default_factory=dict)


def detect_device(peak_tflops: float | None) -> Device:
    import torch

    if torch.cuda.is_available():
        name, driver = "CUDA GPU", None
        # NVML, not torch, names the GPU: torch would open a CUDA context in this parent,
        # and its memory would sit on the device through every child's run.
        with contextlib.suppress(Exception):
            import pynvml

            pynvml.nvmlInit()
            raw = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            found = pynvml.nvmlSystemGetDriverVersion()
            driver = found.decode() if isinstance(found, bytes) else str(found)
        peak = peak_tflops * 1e12 if peak_tflops else None
        if peak is None:
            peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
        return Device(True, f"{name} (driver {driver})", name, peak, {"driver": driver})
    cpu = platform.processor() or "cpu"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    description = f"CPU {cpu}, {os.cpu_count()} cores, no GPU"
    return Device(False, description, cpu, None)


def mfu(tokens_per_s: float | None, per_token: float, device: Device) -> float | None:
    if tokens_per_s is None or device.peak_flops is None:
        return None
    return round(tokens_per_s * per_token / device.peak_flops, 4)


def ratio(numerator: Any, denominator: Any) -> float | None:
    if not isinstance(numerator, int | float) or not isinstance(denominator, int | float):
        return None
    return round(numerator / denominator, 3) if denominator else None


def gib(value: Any) -> str:
    return f"{value / 2**30:.2f}" if isinstance(value, int | float) else "-"


def show(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return "-" if value is None else str(value)


def print_table(result: dict[str, Any]) -> None:
    trainers = result["trainers"]
    columns = [
        ("tokens/s", "tokens_per_s", 6),
        ("median step", "median_step_tokens_per_s", 6),
        ("MFU", "mfu", 3),
        ("alloc GiB", "peak_allocated_bytes", 0),
        ("resv GiB", "peak_reserved_bytes", 0),
        ("NVML GiB", "peak_nvml_used_bytes", 0),
        ("RSS MB", "peak_rss_mb", 6),
        ("loss@last", "loss_last_step", 5),
        ("loss last-win", "loss_last_window", 5),
        ("gnorm@last", "grad_norm_last_step", 4),
        ("span s", "span_s", 5),
    ]
    header = f"{'trainer':<22}" + "".join(f"{title:>14}" for title, _k, _d in columns)
    lines = [
        f"device: {result['device']}   shape: {result['shape']}   "
        f"steps: {result['warmup_steps']} warm-up + {result['timed_steps']} timed",
        header,
    ]
    for name, figures in trainers.items():
        cells = []
        for _title, key, digits in columns:
            value = figures.get(key)
            cells.append(gib(value) if key.endswith("bytes") else show(value, digits or 4))
        lines.append(f"{name:<22}" + "".join(f"{c:>14}" for c in cells))
        if figures.get("error"):
            lines.append(f"  error: {str(figures['error'])[-400:]}")
    ratios = result["ratios"]
    lines.append(
        f"ftod / TRL tuned: {show(ratios['ftod_over_trl_tuned'])} "
        f"(median step {show(ratios['ftod_over_trl_tuned_median_step'])})   "
        f"ftod / TRL default: {show(ratios['ftod_over_trl_default'])} "
        f"(median step {show(ratios['ftod_over_trl_default_median_step'])})   "
        f"monitoring overhead: {show(result['monitoring_overhead_pct'])} %"
    )
    for note in result["notes"]:
        lines.append(f"note: {note}")
    print("\n".join(lines), file=sys.stderr)


def targets(result: dict[str, Any], device: Device) -> dict[str, Any]:
    if not device.cuda:
        return {key: None for key in GPU_TARGETS} | {"measured": False}
    ftod_mfu = result["trainers"].get("ftod", {}).get("mfu")
    speedup = result["ratios"]["ftod_over_trl_tuned"]
    overhead = result["monitoring_overhead_pct"]
    return {
        "ftod_over_trl_tuned": None
        if speedup is None
        else speedup >= GPU_TARGETS["ftod_over_trl_tuned"],
        "mfu": None if ftod_mfu is None else ftod_mfu >= GPU_TARGETS["mfu"],
        "monitoring_overhead_pct": None
        if overhead is None
        else overhead <= GPU_TARGETS["monitoring_overhead_pct"],
        "measured": True,
    }


# -- main -------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[train_throughput {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default=None)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (not timed)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps")
    parser.add_argument("--rows-per-step", type=int, default=None)
    parser.add_argument(
        "--trainers", default=",".join(TRAINER_NAMES), help=f"subset of {','.join(TRAINER_NAMES)}"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="round-robin runs of every trainer (medians)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OMP/MKL threads per trainer (default: untouched with CUDA, 1 on the CPU)",
    )
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the bf16 peak")
    parser.add_argument("--cleanup", action="store_true", help="delete the work dir at the end")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def resolve_shape(args: argparse.Namespace, cuda: bool) -> Shape:
    base = SHAPES[args.shape or ("1b" if cuda else "tiny")]
    changes = {
        "warmup": args.warmup if args.warmup is not None else base.warmup,
        "steps": args.steps if args.steps is not None else base.steps,
        "rows_per_step": args.rows_per_step or base.rows_per_step,
    }
    return Shape(**(asdict(base) | changes))


def prepare(work: Path, shape: Shape, cuda: bool) -> tuple[Path, Path, DataFacts, dict[str, int]]:
    """Model, tokenizer and data under `work`; reused when an earlier call with the same
    shape finished building them, so a GPU run can be split across calls (`--trainers`)."""
    import numpy as np

    model_dir = work / f"llama-{shape.name}-random"
    data = work / "chat.jsonl"
    stamp = work / "inputs.json"
    key = asdict(shape) | {"bf16": cuda, "seed": SEED}
    built: dict[str, int] | None = None
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads(stamp.read_text())
        if previous.get("key") == key and data.is_file() and (model_dir / "config.json").is_file():
            built = previous["built"]
    if built is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        rows = read_jsonl(data)
        log(f"reusing the model and data in {work}")
    else:
        stamp.unlink(missing_ok=True)
        sampler = make_sampler(np.random.default_rng(SEED))
        model_dir.mkdir(parents=True, exist_ok=True)
        tokenizer = build_tokenizer(model_dir, sampler)
        per_step = shape.rows_per_step * shape.seq
        # 15% more rows than the run consumes: no trainer reaches an epoch boundary.
        count = math.ceil(1.15 * shape.total_steps * per_step / shape.mean_tokens)
        rows = synthetic_rows(shape, count, sampler, tokenizer)
        write_jsonl(data, rows)
        started = time.perf_counter()
        built = build_model(model_dir, shape, tokenizer, bf16=cuda)
        log(f"model: {built['parameters']:,} parameters in {time.perf_counter() - started:.1f}s")
        stamp.write_text(json.dumps({"key": key, "built": built}))
    facts = data_facts(shape, rows, tokenizer)
    log(
        f"data: {facts.examples} conversations, mean {facts.mean_tokens} tokens "
        f"(p50 {facts.p50_tokens}, p95 {facts.p95_tokens}, max {facts.max_tokens})"
    )
    return model_dir, data, facts, built


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        spec = json.loads(args.spec.read_text())
        Path(spec["out"]).write_text(json.dumps(trl_worker(spec), indent=1))
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["GIT_OPTIONAL_LOCKS"] = "0"
    device = detect_device(args.peak_tflops)
    shape = resolve_shape(args, device.cuda)
    if args.threads is None and not device.cuda:
        # Two OpenMP threads on two cores that other jobs also used made steps 5-25x
        # slower in trials (each waits for the other); one thread only shares its core.
        args.threads = 1
    wanted = [name.strip() for name in args.trainers.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(TRAINER_NAMES))
    if unknown:
        raise SystemExit(f"--trainers: unknown {', '.join(unknown)}")
    work = (args.work_dir or Path(tempfile.mkdtemp(prefix="ftod-train-bench-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log(f"work dir {work}; device {device.description}; shape {shape.name}")
    # Other work on the machine slows every trainer alike only on average: say how busy it was.
    load_start = os.getloadavg()
    model_dir, data, facts, built = prepare(work, shape, device.cuda)
    counts = parameter_counts(shape, built["parameters"])
    per_token = flops_per_token(shape, counts)

    setup = ftod_workspace(work, data)
    # The rows `prepare_run` exports for ftod (the version's valid rows), for TRL too.
    from core.datasets import export_dataset

    train_data = work / "train.jsonl"
    _version, exported = export_dataset(setup.repository, setup.ref, train_data)
    if exported != facts.examples:
        raise SystemExit(f"ftod keeps {exported} of {facts.examples} generated rows")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in TRAINER_NAMES}
    # Round-robin repeats: load that comes and goes on a shared machine then falls on
    # every trainer rather than on whichever ran at the wrong moment.
    order = [name for name in TRAINER_NAMES if name in wanted]
    for repeat in range(max(1, args.repeats)):
        # Every other round runs backwards, so no trainer always follows the same one.
        for name in order if repeat % 2 == 0 else order[::-1]:
            label = f"{name} (run {repeat + 1}/{max(1, args.repeats)})"
            if name.startswith("ftod"):
                run_dir = ftod_prepare(setup, shape, model_dir, f"{name}-{repeat}")
                log(f"{label}: python -m core.train {run_dir}")
                outcome = ftod_train(run_dir, work, name == "ftod", args.threads)
                figures = ftod_figures(run_dir, shape, outcome, device.cuda)
            else:
                log(f"{label}: TRL worker process")
                figures = run_trl(
                    name,
                    work / f"{name}-{repeat}",
                    shape,
                    model_dir,
                    train_data,
                    facts.trl_default_batch_examples,
                    args.threads,
                )
            runs[name].append(figures)
            log(f"{label}: {figures.get('tokens_per_s')} tok/s, span {figures.get('span_s')} s")
    trainers: dict[str, dict[str, Any]] = {}
    for name, done in runs.items():
        if done:
            key = "span_s" if name == "ftod_monitoring_off" else "tokens_per_s"
            trainers[name] = median_run(done, key)
    if "ftod_monitoring_off" in trainers:
        trainers["ftod_monitoring_off"]["note"] = (
            "no per-step events with monitoring off: only span_s is measured"
        )
    on_runs, off_runs = runs["ftod"], runs["ftod_monitoring_off"]

    for figures in trainers.values():
        figures["mfu"] = mfu(figures.get("tokens_per_s"), per_token, device)
        grad = figures.get("grad_norm_last_step")
        figures["grad_norm_nonzero"] = None if grad is None else grad > 0

    ftod = trainers.get("ftod", {})
    overhead = None
    spans_on = [r["span_s"] for r in on_runs if "span_s" in r]
    spans_off = [r["span_s"] for r in off_runs if "span_s" in r]
    if spans_on and spans_off:
        on, off = statistics.median(spans_on), statistics.median(spans_off)
        overhead = round(100 * (on - off) / off, 2)
        if "all_steps_tokens" in ftod:
            for figures, span in ((ftod, on), (trainers["ftod_monitoring_off"], off)):
                figures["span_tokens_per_s"] = round(ftod["all_steps_tokens"] / span, 1)
    parity: dict[str, Any] = {
        "comparable": True,
        "basis": "every trainer's loss is the mean over assistant tokens (TRL "
        "assistant_only_loss=True, the same template generation block as ftod's spans); "
        "rows, learning rate, constant schedule and seed are the same, batch order is not",
    }
    for name in ("trl_default", "trl_tuned", "ftod_monitoring_off"):
        other = trainers.get(name, {})
        for key in ("loss_last_step", "loss_last_window"):
            a, b = other.get(key), ftod.get(key)
            if isinstance(a, float) and isinstance(b, float):
                parity[f"{name}_{key}_minus_ftod"] = round(a - b, 4)
    if "ftod" in trainers and "ftod_monitoring_off" in trainers:
        parity["adapter_max_abs_diff_monitoring_on_vs_off"] = adapter_difference(
            Path(trainers["ftod"]["run_dir"]), Path(trainers["ftod_monitoring_off"]["run_dir"])
        )

    notes = []
    if not device.cuda:
        notes.append(
            "no GPU: tiny shape in fp32 on the CPU; MFU is null (no meaningful CPU peak); "
            "torch memory figures are null, peak RSS of each trainer process is reported; "
            "the GPU targets (>= 1.3x TRL tuned, >= 40% MFU, <= 1% monitoring overhead) "
            "are not measured by this run; each trainer runs one OpenMP thread (--threads) "
            "and the figures move with whatever else the machine runs (load_average_1min)"
        )
    elif device.peak_flops is None:
        notes.append(f"unknown bf16 peak for {device.name}: pass --peak-tflops for MFU")
    tuned = trainers.get("trl_tuned", {})
    if tuned.get("attn_implementation") == "sdpa" and device.cuda:
        notes.append(
            "flash-attn is not installed: ftod and TRL tuned both use SDPA; TRL's padding-free "
            "batch is one row of all sequences, which SDPA attends with a dense block mask"
        )
    import peft
    import torch
    import transformers

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "trl": next((t.get("trl_version") for t in trainers.values() if "trl_version" in t), None),
        "cuda": torch.version.cuda,
    }
    result: dict[str, Any] = {
        "bench": "train_throughput",
        "device": device.description,
        "gpu": device.cuda,
        "shape": shape.name,
        "command": " ".join(["python", "bench/train_throughput.py", *sys.argv[1:]]),
        "work_dir": str(work),
        "warmup_steps": shape.warmup,
        "timed_steps": shape.steps,
        "repeats": max(1, args.repeats),
        "threads_per_trainer": args.threads,
        "model": asdict(shape) | counts | {"flops_per_token": per_token},
        "lora": {"r": LORA_R, "alpha": LORA_ALPHA, "dropout": 0.0, "targets": TARGET_MODULES},
        "data": asdict(facts),
        "peak_flops": device.peak_flops,
        "trainers": trainers,
        "ratios": {
            "ftod_over_trl_tuned": ratio(ftod.get("tokens_per_s"), tuned.get("tokens_per_s")),
            "ftod_over_trl_default": ratio(
                ftod.get("tokens_per_s"), trainers.get("trl_default", {}).get("tokens_per_s")
            ),
            "ftod_over_trl_tuned_median_step": ratio(
                ftod.get("median_step_tokens_per_s"), tuned.get("median_step_tokens_per_s")
            ),
            "ftod_over_trl_default_median_step": ratio(
                ftod.get("median_step_tokens_per_s"),
                trainers.get("trl_default", {}).get("median_step_tokens_per_s"),
            ),
        },
        "monitoring_overhead_pct": overhead,
        "load_average_1min": {"start": load_start[0], "end": os.getloadavg()[0]},
        "loss_parity": parity,
        "notes": notes,
        "versions": versions,
    }
    result["targets_met"] = targets(result, device)
    print_table(result)
    print(json.dumps(result, default=str))
    if args.cleanup:
        shutil.rmtree(work, ignore_errors=True)
    failed = [name for name, figures in trainers.items() if figures.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
