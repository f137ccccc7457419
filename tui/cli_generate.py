"""`ftod prompt add|list|show`, `ftod eval run` (generate an eval with a local model) and
`ftod compare-run` (baseline and candidate from one copy of the base weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from core.safetext import escape_control
from tui.cli_common import (
    _repository,
    _workspace,
    json_option,
    print_json,
    progress_display,
    reports_errors,
    repository,
)
from tui.cli_scorers import load_scorers, scorer_file_option


@click.group("prompt")
def prompt_group() -> None:
    """Versioned prompts: system prompt, few-shot turns, generation settings."""


@prompt_group.command("add")
@click.argument("name")
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(path_type=Path),
    help="YAML with system, few_shot, max_new_tokens (256), temperature (0), stop.",
)
@json_option
@click.pass_context
@reports_errors
def prompt_add(ctx: click.Context, name: str, path: Path, as_json: bool) -> None:
    """Store PROMPT.yaml as a new version of NAME (only when its content changed)."""
    from core.evals.prompts import add_prompt
    from core.safefiles import MAX_WHOLE_FILE_BYTES, require_regular_file
    from store.prompts import PromptRepository

    require_regular_file(path, "--file", max_bytes=MAX_WHOLE_FILE_BYTES)
    record, created = add_prompt(repository(ctx, PromptRepository), name, path)
    if as_json:
        print_json({**record.as_json(), "created": created})
        return
    if created:
        click.echo(f"Added prompt {record.ref} (sha256 {record.sha256[:12]})")
    else:
        click.echo(f"Unchanged: {record.ref} already has this content")


@prompt_group.command("list")
@json_option
@click.pass_context
@reports_errors
def prompt_list(ctx: click.Context, as_json: bool) -> None:
    """The latest version of every prompt."""
    from store.prompts import PromptRepository

    records = repository(ctx, PromptRepository).list_prompts()
    if as_json:
        print_json([record.as_json() for record in records])
        return
    if not records:
        click.echo("No prompts yet. Add one with `ftod prompt add NAME --file prompt.yaml`.")
        return
    for record in records:
        system = escape_control((record.system or "").replace("\n", " "))
        click.echo(
            f"{record.ref:<24} few-shot {len(record.few_shot)}  max_new_tokens "
            f"{record.max_new_tokens}  temperature {record.temperature:g}  "
            f"{system[:40]}{'…' if len(system) > 40 else ''}"
        )


@prompt_group.command("show")
@click.argument("ref")
@json_option
@click.pass_context
@reports_errors
def prompt_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """One prompt: NAME (latest) or NAME@VERSION."""
    from store.prompts import PromptRepository

    record = repository(ctx, PromptRepository).prompt(ref)
    if as_json:
        print_json(record.as_json())
        return
    click.echo(f"{record.ref}  sha256 {record.sha256[:12]}  {record.created_at:%Y-%m-%d %H:%M}")
    click.echo(
        f"  max_new_tokens {record.max_new_tokens}, temperature {record.temperature:g}"
        + (" (greedy)" if record.temperature == 0 else "")
        + (f", stop {list(record.stop)}" if record.stop else "")
    )
    system = escape_control(record.system, keep_lines=True) if record.system is not None else None
    click.echo(f"  system: {system if system is not None else '(the example’s)'}")
    for index, shot in enumerate(record.few_shot, start=1):
        click.echo(f"  shot {index} user: {escape_control(shot.user, keep_lines=True)}")
        click.echo(f"  shot {index} assistant: {escape_control(shot.assistant, keep_lines=True)}")


def _common_generation_options(command: Any) -> Any:
    for option in reversed(
        [
            click.option("--model", required=True, help="Base model: a folder or a hub id."),
            click.option(
                "--data",
                "data_ref",
                required=True,
                help="The eval set: NAME@VERSION, or NAME@VERSION:SPLIT.",
            ),
            click.option(
                "--scorer",
                "scorer_specs",
                multiple=True,
                help="A scorer spec (repeatable; default exact).",
            ),
            scorer_file_option,
            click.option("--batch-size", default=8, show_default=True, type=int),
            click.option(
                "--max-new-tokens",
                default=None,
                type=int,
                help="Override the prompt's max_new_tokens.",
            ),
            click.option(
                "--resume", is_flag=True, help="Continue a crashed run from its partial file."
            ),
        ]
    ):
        command = option(command)
    return command


def _print_outcome(payload: Any) -> None:
    outcome = payload.outcome
    record = outcome.record
    resumed = f", {payload.resumed} resumed" if payload.resumed else ""
    click.echo(
        f"Stored eval {record.eval_id} {record.label!r} on {record.data_ref}: "
        f"{record.rows} outputs ({payload.generated} generated{resumed})"
    )
    for summary in outcome.summaries:
        mean = "—" if summary.mean is None else f"{summary.mean:.4f}"
        click.echo(f"  {summary.scorer}: mean {mean} over {summary.scored}")
    for note in record.notes:
        click.echo(f"note: {escape_control(note)}", err=True)


@click.command("run")
@_common_generation_options
@click.option("--adapter", default=None, help="A run id/name, or an adapter folder (PEFT).")
@click.option("--prompt", "prompt_ref", required=True, help="NAME or NAME@VERSION.")
@click.option("--label", required=True, help="A unique name for this eval.")
@json_option
@click.pass_context
@reports_errors
def eval_run(
    ctx: click.Context,
    model: str,
    data_ref: str,
    scorer_specs: tuple[str, ...],
    scorer_files: tuple[Path, ...],
    batch_size: int,
    max_new_tokens: int | None,
    resume: bool,
    adapter: str | None,
    prompt_ref: str,
    label: str,
    as_json: bool,
) -> None:
    """Generate outputs with a local model (+ adapter) and a prompt, then store them as an eval.

    Finished examples are kept in .ftod/evals/LABEL.partial.jsonl; after a crash, run the
    same command with --resume.
    """
    from core.evals.generate import run_eval
    from store.evals import EvalRepository
    from store.prompts import PromptRepository

    load_scorers(ctx, scorer_files)
    with progress_display(not as_json) as update:
        result = run_eval(
            _workspace(ctx),
            _repository(ctx),
            repository(ctx, EvalRepository),
            repository(ctx, PromptRepository),
            model=model,
            adapter=adapter,
            prompt_ref=prompt_ref,
            data_ref=data_ref,
            label=label,
            scorer_specs=list(scorer_specs) or None,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            resume=resume,
            progress=(lambda done, total: update(label, done, total)) if update else None,
        )
    if as_json:
        print_json(result.as_json())
        return
    _print_outcome(result)


@click.command("compare-run")
@_common_generation_options
@click.option("--adapter", required=True, help="A run id/name, or an adapter folder (PEFT).")
@click.option("--baseline-prompt", required=True, help="Prompt of the baseline (base model).")
@click.option("--candidate-prompt", required=True, help="Prompt of the candidate (+ adapter).")
@click.option(
    "--label-prefix", required=True, help="Evals are stored as PREFIX-base, PREFIX-candidate."
)
@json_option
@click.pass_context
@reports_errors
def compare_run(
    ctx: click.Context,
    model: str,
    data_ref: str,
    scorer_specs: tuple[str, ...],
    scorer_files: tuple[Path, ...],
    batch_size: int,
    max_new_tokens: int | None,
    resume: bool,
    adapter: str,
    baseline_prompt: str,
    candidate_prompt: str,
    label_prefix: str,
    as_json: bool,
) -> None:
    """Evaluate base + baseline prompt and base + adapter + candidate prompt, then compare.

    The base weights are loaded once; the baseline runs with the adapter disabled.
    """
    from core.evals.generate import run_compare
    from store.evals import EvalRepository
    from store.prompts import PromptRepository

    load_scorers(ctx, scorer_files)
    with progress_display(not as_json) as update:
        result = run_compare(
            _workspace(ctx),
            _repository(ctx),
            repository(ctx, EvalRepository),
            repository(ctx, PromptRepository),
            model=model,
            adapter=adapter,
            baseline_prompt=baseline_prompt,
            candidate_prompt=candidate_prompt,
            data_ref=data_ref,
            label_prefix=label_prefix,
            scorer_specs=list(scorer_specs) or None,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            resume=resume,
            progress=update,
        )
    comparison = result.comparison.comparison
    if as_json:
        print_json(
            {
                "baseline": result.baseline.as_json(),
                "candidate": result.candidate.as_json(),
                "comparison": comparison.as_json(),
            }
        )
        return
    _print_outcome(result.baseline)
    _print_outcome(result.candidate)
    overall = comparison.overall
    click.echo(
        f"{result.candidate.outcome.record.label} vs {result.baseline.outcome.record.label} "
        f"({comparison.scorer}): n {overall.n}, a {overall.mean_a:.4f}, "
        f"b {overall.mean_b:.4f}, delta {overall.delta:+.4f}"
    )
    click.echo(
        f"Details: ftod compare {result.baseline.outcome.record.label} "
        f"{result.candidate.outcome.record.label}"
    )
