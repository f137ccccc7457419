"""Rebuild the demo's base model and its recorded LoRA run, offline, on the CPU.

    python sample_runs/make_recorded_run.py

Step A trains a byte-level BPE tokenizer on the text of the sample dataset files and
pretrains a small Llama on the customer side of the support conversations (causal-LM
loss on every token), so the base model knows the domain's language without a single
download, and the LoRA run has the agent's replies left to learn. It is saved to
sample_runs/base_model/ with TRAINING.md saying how it was made.

Step B adds support_tickets.jsonl to a throw-away workspace, splits it exactly as
`ftod demo` does, writes sample_runs/support-lora.yaml and launches it the way
`ftod train sample_runs/support-lora.yaml` does (prepare_run, then the detached trainer).
The finished run directory is copied to sample_runs/runs/<run_id>/ without checkpoints
or exported data, with its paths made relative to the repository; `ftod demo` makes them
absolute again for the checkout it runs from.

Everything is seeded; rerunning replaces base_model/, runs/ and support-lora.yaml.
"""

from __future__ import annotations

import os

# Before transformers is imported: it reads these once. Nothing here may touch the hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# prepare_run records the git commit; `git status` must not take the index lock of a
# checkout someone may be committing in.
os.environ["GIT_OPTIONAL_LOCKS"] = "0"

import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, sys.path[0] is sample_runs/; the ftod packages live one level up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from core.datasets import add_dataset, export_dataset
from core.runs.config import load_run_config
from core.runs.launch import prepare_run, start_trainer
from core.runs.rundir import RunPaths, iter_records, observed_status
from store.datasets import DatasetRepository
from store.db import Store
from store.workspace import init_workspace
from tui.demo import (
    BASE_MODEL,
    RECORDED_RUNS,
    REPO_ROOT,
    RUN_CONFIG,
    SUPPORT_DIR,
    rebase_run_paths,
    split_support_tickets,
    to_repo_relative,
)

DATASET = "support-tickets"
TOKENIZER_SOURCES = ("support_tickets.jsonl", "support_tickets_v2.jsonl", "heldout_eval.jsonl")

SEED = 0
VOCAB_SIZE = 2048
ROLES = ("system", "user", "assistant", "tool")
SPECIAL_TOKENS = ["<|pad|>", "<|eot|>", "<|tools|>", "<|call|>", *(f"<|{r}|>" for r in ROLES)]
# One line, so no template whitespace leaks into the rendering. A turn is
# <|role|>content<|eot|>; tool calls follow the content as <|call|>name(arguments), and
# the tool schemas, when a row has them, come first in their own <|tools|> turn.
CHAT_TEMPLATE = (
    "{% if tools %}<|tools|>{{ tools | tojson }}<|eot|>{% endif %}"
    "{% for m in messages %}<|{{ m['role'] }}|>"
    "{% if m['content'] %}{{ m['content'] }}{% endif %}"
    "{% if m['tool_calls'] %}{% for call in m['tool_calls'] %}"
    "<|call|>{{ call['function']['name'] }}({{ call['function']['arguments'] }})"
    "{% endfor %}{% endif %}<|eot|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

MODEL_SHAPE: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 344,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
}
PRETRAIN_BLOCK = 512
PRETRAIN_BATCH = 4
PRETRAIN_STEPS = 120
PRETRAIN_LR = 3e-3
PRETRAIN_WARMUP = 20
PRETRAIN_WEIGHT_DECAY = 0.1
BASE_MODEL_BUDGET_BYTES = 8 * 1024 * 1024

RUN_CONFIG_TEXT = """\
# The LoRA run recorded in sample_runs/runs/ by sample_runs/make_recorded_run.py.
# `ftod demo` writes a copy next to its workspace with base_model made absolute, so
# `ftod train support-lora.yaml` there trains the same run on the CPU in a few minutes.
name: support-lora
base_model: sample_runs/base_model
dataset: support-tickets@1
splits:
  train: train
  val: val
lora:
  r: 8
  alpha: 16
  dropout: 0.05
  target_modules: all-linear
train:
  lr: 5.0e-3
  scheduler: cosine
  warmup: 0.05
  epochs: 2
  batch_size: 4
  max_seq_len: 512
  packing: true
  precision: fp32
  eval_every: 20
  save_every: 100000
  seed: 0
"""
RUN_TIMEOUT_S = 30 * 60
RUN_BUDGET_BYTES = 3 * 1024 * 1024


def log(text: str) -> None:
    print(text, flush=True)


# -- step A: tokenizer and base model --------------------------------------------------


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def dataset_texts() -> list[str]:
    """Every string of every parseable row (metadata aside): what the BPE merges learn.

    The files hold planted broken lines (bad JSON, bad UTF-8) on purpose; they are skipped.
    """
    texts: list[str] = []
    for name in TOKENIZER_SOURCES:
        for line in (SUPPORT_DIR / name).read_bytes().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                texts += _strings({k: v for k, v in row.items() if k != "metadata"})
    return texts


def train_tokenizer(folder: Path) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(dataset_texts(), trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer, eos_token="<|eot|>", pad_token="<|pad|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = MODEL_SHAPE["max_position_embeddings"]
    fast.save_pretrained(str(folder))
    return fast


def render(tokenizer: Any, row: dict[str, Any]) -> str:
    messages = [
        {**{k: v for k, v in m.items() if k != "weight"}, "content": m.get("content") or ""}
        for m in row["messages"]
    ]
    return str(
        tokenizer.apply_chat_template(messages, tools=row.get("tools") or None, tokenize=False)
    )


def customer_side(row: dict[str, Any]) -> dict[str, Any]:
    """The conversation without the agent's turns: policies, questions, tool results.

    The base model reads these; writing the agent's replies is left for the LoRA run to
    learn, as a chat fine-tune teaches a base model to answer. A base model pretrained on
    the replies themselves leaves a LoRA on the same rows next to nothing to learn.
    """
    return {**row, "messages": [m for m in row["messages"] if m.get("role") != "assistant"]}


def token_stream(tokenizer: Any, rows: list[dict[str, Any]]) -> torch.Tensor:
    ids: list[int] = []
    for row in rows:
        # Whole conversations, some longer than the context; blocks() cuts them.
        text = render(tokenizer, row)
        ids += tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def blocks(stream: torch.Tensor) -> torch.Tensor:
    usable = (len(stream) - 1) // PRETRAIN_BLOCK * PRETRAIN_BLOCK
    return stream[:usable].view(-1, PRETRAIN_BLOCK)


@torch.no_grad()
def mean_loss(model: Any, data: torch.Tensor) -> float:
    model.eval()
    total = 0.0
    for start in range(0, len(data), PRETRAIN_BATCH):
        batch = data[start : start + PRETRAIN_BATCH]
        total += float(model(input_ids=batch, labels=batch).loss) * len(batch)
    model.train()
    return total / max(1, len(data))


def pretrain_base_model(train_rows: list[dict[str, Any]], val_rows: list[dict[str, Any]]) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    shutil.rmtree(BASE_MODEL, ignore_errors=True)
    BASE_MODEL.mkdir(parents=True)
    tokenizer = train_tokenizer(BASE_MODEL)
    train = blocks(token_stream(tokenizer, [customer_side(row) for row in train_rows]))
    val = blocks(token_stream(tokenizer, [customer_side(row) for row in val_rows]))
    log(
        f"tokenizer: {len(tokenizer)} tokens; pretraining data {train.numel():,} tokens "
        f"({len(train)} blocks of {PRETRAIN_BLOCK}), held out {val.numel():,}"
    )

    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **MODEL_SHAPE,
    )
    model = LlamaForCausalLM(config)
    parameters = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": PRETRAIN_WEIGHT_DECAY},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=PRETRAIN_LR,
        betas=(0.9, 0.95),
    )

    def factor(step: int) -> float:
        if step < PRETRAIN_WARMUP:
            return (step + 1) / PRETRAIN_WARMUP
        progress = (step - PRETRAIN_WARMUP) / max(1, PRETRAIN_STEPS - PRETRAIN_WARMUP)
        # Down to a tenth, not zero: the last steps still learn something.
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    generator = torch.Generator().manual_seed(SEED)
    val_before = mean_loss(model, val)
    log(f"base model: {parameters:,} parameters; held-out loss before training {val_before:.3f}")
    began = time.perf_counter()
    losses: list[float] = []
    model.train()
    for step in range(1, PRETRAIN_STEPS + 1):
        batch = train[torch.randint(len(train), (PRETRAIN_BATCH,), generator=generator)]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if step == 1 or step % 25 == 0:
            log(
                f"  pretrain step {step}/{PRETRAIN_STEPS} loss {losses[-1]:.3f} "
                f"({time.perf_counter() - began:.0f} s)"
            )
    seconds = time.perf_counter() - began
    val_after = mean_loss(model, val)
    log(f"base model: held-out loss after {PRETRAIN_STEPS} steps {val_after:.3f} ({seconds:.0f} s)")
    model.config.use_cache = True
    model.save_pretrained(str(BASE_MODEL))
    size = sum(p.stat().st_size for p in BASE_MODEL.rglob("*") if p.is_file())
    if size > BASE_MODEL_BUDGET_BYTES:
        raise SystemExit(f"{BASE_MODEL} is {size:,} bytes, over its {BASE_MODEL_BUDGET_BYTES:,}")
    tail = losses[-20:]
    (BASE_MODEL / "TRAINING.md").write_text(
        TRAINING_MD.format(
            vocab=len(tokenizer),
            parameters=parameters,
            **MODEL_SHAPE,
            train_rows=len(train_rows),
            train_tokens=train.numel(),
            val_rows=len(val_rows),
            steps=PRETRAIN_STEPS,
            batch=PRETRAIN_BATCH,
            block=PRETRAIN_BLOCK,
            tokens_seen=PRETRAIN_STEPS * PRETRAIN_BATCH * PRETRAIN_BLOCK,
            lr=PRETRAIN_LR,
            warmup=PRETRAIN_WARMUP,
            weight_decay=PRETRAIN_WEIGHT_DECAY,
            first_loss=losses[0],
            last_loss=sum(tail) / len(tail),
            val_before=val_before,
            val_after=val_after,
            seconds=seconds,
            threads=torch.get_num_threads(),
            torch=torch.__version__,
            size=size,
        ),
        encoding="utf-8",
    )


TRAINING_MD = """\
# The demo's base model

A small Llama trained from scratch by `sample_runs/make_recorded_run.py` (step A), offline
and on the CPU, so that the recorded LoRA run and `ftod demo` need no download. It is a
toy: it has picked up the vocabulary and shape of Lumen Home support conversations, not
the ability to answer them.

- Tokenizer: byte-level BPE, {vocab} tokens, trained on every string of the parseable rows
  of `support_tickets.jsonl`, `support_tickets_v2.jsonl` and `heldout_eval.jsonl`.
  Special tokens `<|system|>`, `<|user|>`, `<|assistant|>`, `<|tool|>`, `<|tools|>`,
  `<|call|>`, `<|eot|>` (end of turn, also EOS) and `<|pad|>`. The chat template renders
  a turn as `<|role|>content<|eot|>`, tool calls as `<|call|>name(arguments)`, and the
  generation prompt as `<|assistant|>`.
- Model: LlamaForCausalLM, hidden size {hidden_size}, intermediate size
  {intermediate_size}, {num_hidden_layers} layers, {num_attention_heads} attention heads,
  {num_key_value_heads} KV heads, {max_position_embeddings} positions, tied input and
  output embeddings: {parameters:,} parameters, saved as fp32 safetensors ({size:,} bytes
  in this folder).
- Data: the {train_rows} conversations of the train split of `support-tickets@1` (split as
  `ftod demo` splits it: val 0.1, test 0.1, seed 0, grouped by customer_id, stratified by
  label) without their assistant turns: system prompts (the store's policies), customer
  messages, tool schemas and tool results, rendered with the chat template; {train_tokens:,}
  tokens in blocks of {block}. Writing the agent's replies is what the recorded LoRA run
  teaches it. The {val_rows} val conversations were held out, so the LoRA run's val loss
  is measured on text neither model has seen.
- Training: causal-LM loss on all tokens, {steps} steps of {batch} blocks ({tokens_seen:,}
  tokens), AdamW (betas 0.9/0.95, weight decay {weight_decay} on matrices), lr {lr} with
  {warmup} warmup steps and a cosine decay to a tenth, gradient clipping at 1.0, seed 0.
- Result: training loss {first_loss:.3f} at the first step and {last_loss:.3f} over the
  last 20 steps; held-out loss {val_before:.3f} before training, {val_after:.3f} after.
  {seconds:.0f} s on {threads} CPU threads (torch {torch}).
"""


# -- step B: the recorded LoRA run ------------------------------------------------------


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def wait_for(paths: RunPaths) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    shown = 0
    while time.monotonic() < deadline:
        status = observed_status(paths)
        steps = [r for r in iter_records(paths.events) if r.get("type") in ("train", "eval")]
        for record in steps[shown:]:
            if record["type"] == "eval":
                log(f"  step {record['step']}: val loss {record['val_loss']:.4f}")
            elif record["step"] % 20 == 0:
                log(f"  step {record['step']}: loss {record['loss']:.4f}")
        shown = len(steps)
        if status is not None and status.is_final:
            return status.state
        time.sleep(1.0)
    raise SystemExit(f"{paths.run_id} did not finish within {RUN_TIMEOUT_S} s; see {paths.log}")


def copy_run(source: RunPaths) -> Path:
    """The run as committed: no checkpoints, no exported data (the dataset is in the repo)."""
    shutil.rmtree(RECORDED_RUNS, ignore_errors=True)
    target = RECORDED_RUNS / source.run_id

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder)
        skipped = {n for n in names if n.startswith(".") or n == "cancel.request"}
        if here == source.root:
            skipped.add("checkpoints")
        if here == source.data_dir:
            skipped |= {n for n in names if n.endswith(".jsonl")}
        return skipped

    shutil.copytree(source.root, target, ignore=ignore)
    rebase_run_paths(target, to_repo_relative)
    for name in ("trainer.log", "adapter/README.md"):
        # Free text: only the checkout's own prefix is taken out, for tidiness.
        path = target / name
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            path.write_text(text.replace(f"{REPO_ROOT}/", ""), encoding="utf-8")
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    if size > RUN_BUDGET_BYTES:
        raise SystemExit(f"{target} is {size:,} bytes, over its {RUN_BUDGET_BYTES:,}")
    return target


def record_lora_run() -> None:
    RUN_CONFIG.write_text(RUN_CONFIG_TEXT, encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="ftod-recorded-run-") as scratch:
        workspace, _ = init_workspace(Path(scratch))
        repository = DatasetRepository(Store.open(workspace))
        outcome = add_dataset(workspace, repository, SUPPORT_DIR / "support_tickets.jsonl", DATASET)
        split_support_tickets(repository, outcome.version.ref)
        exported = {}
        for split in ("train", "val"):
            path = Path(scratch) / f"{split}.jsonl"
            export_dataset(repository, outcome.version.ref, path, split=split)
            exported[split] = read_rows(path)

        pretrain_base_model(exported["train"], exported["val"])

        # As `ftod train sample_runs/support-lora.yaml` from the repository root: the
        # relative base_model resolves against the working directory.
        os.chdir(REPO_ROOT)
        config = load_run_config(RUN_CONFIG.relative_to(REPO_ROOT))
        prepared = prepare_run(workspace, repository, config, config_path=RUN_CONFIG)
        pid = start_trainer(prepared.paths)
        log(f"LoRA run {prepared.paths.run_id}: trainer pid {pid}")
        began = time.perf_counter()
        state = wait_for(prepared.paths)
        log(f"LoRA run {prepared.paths.run_id}: {state} in {time.perf_counter() - began:.0f} s")
        if state != "succeeded":
            log(prepared.paths.log.read_text(errors="replace")[-4000:])
            raise SystemExit(f"the recorded run ended {state}")
        target = copy_run(prepared.paths)
    log(f"recorded run copied to {target.relative_to(REPO_ROOT)}")


def main() -> int:
    record_lora_run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
