"""Eval generation throughput: ftod's batched generation against a per-example loop.

Builds offline, under a temp dir, a byte-level BPE tokenizer with a chat template and a
random-initialised Llama saved with it, and N synthetic support chats (`bench.synthetic`).
Then, on one loaded copy of the model (`core.evals.generate.load_model`: left padding, fp32
on the CPU, bf16 on CUDA):

- ftod: `generate_with` (what `generate_outputs` runs once the model is loaded): examples
  encoded with the chat template, sorted longest first, left-padded batches of
  `--batch-size` through `model.generate`, greedy, KV cache on;
- the peer: one `model.generate` call per example (batch of one, no padding), with the
  same encoding, the same greedy `GenerationConfig` and the same end-of-turn handling.

Both see the same examples and `--max-new-tokens`. Reported: examples/s and output
tokens/s of each, the speed-up, and how many outputs differ between the two (batched and
single-row matmuls round differently, so a near-tie in the logits can flip a greedy pick;
in fp32 that should be rare, in bf16 it is expected now and then). One untimed warm-up
call of each comes first; then `--repeats` rounds (default 3) in alternating order, and
the medians are reported. On the CPU torch runs on `--threads` (default 1) so that a box
shared with other jobs does not oversubscribe its cores.

Without CUDA the default is the `tiny` shape (hidden 256, 4 layers), 64 examples,
max_new_tokens 32: it checks the harness and the batching gain on the CPU and does not
measure the GPU target (≥ 5x). With CUDA the default is a `1b` shape (Llama-3.2-1B layers
with this small vocabulary) in bf16, 256 examples, max_new_tokens 128.

    python bench/eval_throughput.py [--shape tiny|1b] [--examples N] [--batch-size B]

The final line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.synthetic import make_row  # noqa: E402
from core.evals.generate import (  # noqa: E402
    LoadedModel,
    _eos_ids,
    encode,
    generate_with,
    load_model,
)
from core.evals.outputs import EvalExample, reference_of  # noqa: E402
from core.evals.prompts import PromptSpec  # noqa: E402

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eot|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|eot|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
# name: hidden, layers, heads, kv heads, intermediate
SHAPES = {"tiny": (256, 4, 4, 2, 688), "1b": (2048, 16, 32, 8, 8192)}
DEFAULTS = {"tiny": (64, 32), "1b": (256, 128)}  # examples, max_new_tokens
GPU_TARGET_SPEEDUP = 5.0


def make_examples(count: int) -> list[EvalExample]:
    rng = random.Random(0)
    examples = []
    for index in range(count):
        row = make_row(rng, index)
        messages: tuple[dict[str, Any], ...] = tuple(row["messages"])  # type: ignore[arg-type]
        examples.append(
            EvalExample(
                line=index + 1,
                reference=reference_of(list(messages)),
                slice=None,
                metadata={},
                messages=messages,
            )
        )
    return examples


def build_model(folder: Path, shape: str, examples: list[EvalExample], cuda: bool) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = [str(m["content"]) for example in examples for m in example.messages]
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer, bos_token="<|bos|>", eos_token="<|eot|>", pad_token="<|pad|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(folder))
    hidden, layers, heads, kv_heads, intermediate = SHAPES[shape]
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    model: Any = LlamaForCausalLM(config)
    if cuda:
        model = model.to(torch.bfloat16)
    model.save_pretrained(str(folder))
    return folder


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} vCPU"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_ftod(
    loaded: LoadedModel, prompt: PromptSpec, examples: list[EvalExample], batch_size: int
) -> tuple[float, list[tuple[str, int]]]:
    sync()
    started = time.perf_counter()
    outputs = generate_with(loaded, prompt, examples, batch_size=batch_size)
    sync()
    seconds = time.perf_counter() - started
    return seconds, [(output.output, int(output.output_tokens or 0)) for output in outputs]


def run_loop(
    loaded: LoadedModel, prompt: PromptSpec, examples: list[EvalExample]
) -> tuple[float, list[tuple[str, int]]]:
    """The peer: one `model.generate` per example, batch of one, same greedy settings."""
    import torch
    from transformers import GenerationConfig

    tokenizer, model = loaded.tokenizer, loaded.model
    eos = _eos_ids(loaded)
    pad = int(tokenizer.pad_token_id)
    config = GenerationConfig(  # type: ignore[no-untyped-call]
        max_new_tokens=prompt.max_new_tokens,
        do_sample=False,
        use_cache=True,
        pad_token_id=pad,
        eos_token_id=sorted(eos) or None,
    )
    device = next(model.parameters()).device
    results = []
    sync()
    started = time.perf_counter()
    for example in examples:
        ids = torch.tensor([encode(loaded, prompt, example).input_ids], device=device)
        with torch.inference_mode():
            generated = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config
            )
        new = generated[0, ids.shape[1] :].tolist()
        # As ftod reads a row: up to end-of-turn (counted) or a generated pad (not counted).
        end, counted = len(new), len(new)
        for index, token in enumerate(new):
            if token in eos or token == pad:
                end, counted = index, index + (token in eos)
                break
        text = tokenizer.decode(new[:end], skip_special_tokens=True)
        results.append((text, counted))
    sync()
    return time.perf_counter() - started, results


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cuda = torch.cuda.is_available()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1b" if cuda else "tiny")
    parser.add_argument("--examples", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds, order alternating; medians reported"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (CPU default 1: a shared box)"
    )
    args = parser.parse_args()
    if args.threads or not cuda:
        torch.set_num_threads(args.threads or 1)
    count = args.examples or DEFAULTS[args.shape][0]
    new_tokens = args.max_new_tokens or DEFAULTS[args.shape][1]
    examples = make_examples(count)
    prompt = PromptSpec(None, (), new_tokens, 0.0, ())
    with tempfile.TemporaryDirectory() as folder:
        build_model(Path(folder), args.shape, examples, cuda)
        loaded = load_model(folder)
    warm = examples[: min(len(examples), args.batch_size)]
    run_ftod(loaded, prompt, warm, args.batch_size)
    run_loop(loaded, prompt, warm[:2])
    ftod_runs: list[float] = []
    loop_runs: list[float] = []
    for round_ in range(max(1, args.repeats)):
        for side in ("ftod", "loop") if round_ % 2 == 0 else ("loop", "ftod"):
            if side == "ftod":
                seconds, ftod_out = run_ftod(loaded, prompt, examples, args.batch_size)
                ftod_runs.append(seconds)
            else:
                seconds, loop_out = run_loop(loaded, prompt, examples)
                loop_runs.append(seconds)
    ftod_s, loop_s = statistics.median(ftod_runs), statistics.median(loop_runs)
    differ = sum(1 for a, b in zip(ftod_out, loop_out, strict=True) if a != b)
    ftod_tokens = sum(tokens for _, tokens in ftod_out)
    loop_tokens = sum(tokens for _, tokens in loop_out)
    input_tokens = [len(encode(loaded, prompt, example).input_ids) for example in examples]
    dtype = str(next(loaded.model.parameters()).dtype).removeprefix("torch.")
    result: dict[str, Any] = {
        "bench": "eval_throughput",
        "device": torch.cuda.get_device_name() if cuda else f"cpu ({cpu_name()})",
        "threads": torch.get_num_threads(),
        "shape": args.shape,
        "dtype": dtype,
        "vocab": int(loaded.model.config.vocab_size),
        "parameters_m": round(sum(p.numel() for p in loaded.model.parameters()) / 1e6, 1),
        "examples": count,
        "batch_size": args.batch_size,
        "max_new_tokens": new_tokens,
        "input_tokens_min": min(input_tokens),
        "input_tokens_mean": round(sum(input_tokens) / len(input_tokens), 1),
        "input_tokens_max": max(input_tokens),
        "ftod_seconds": round(ftod_s, 2),
        "ftod_examples_per_s": round(count / ftod_s, 2),
        "ftod_output_tokens_per_s": round(ftod_tokens / ftod_s, 1),
        "loop_seconds": round(loop_s, 2),
        "loop_examples_per_s": round(count / loop_s, 2),
        "loop_output_tokens_per_s": round(loop_tokens / loop_s, 1),
        "ftod_output_tokens": ftod_tokens,
        "loop_output_tokens": loop_tokens,
        "speedup": round(loop_s / ftod_s, 2),
        "ftod_seconds_each": [round(x, 2) for x in ftod_runs],
        "loop_seconds_each": [round(x, 2) for x in loop_runs],
        "speedup_each": [round(b / a, 2) for a, b in zip(ftod_runs, loop_runs, strict=True)],
        "outputs_differ": differ,
        "gpu_target_speedup": GPU_TARGET_SPEEDUP,
        "gpu_target_measured": cuda,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
