"""`ftod cost`: what a fine-tune costs and when it pays back, from the workspace's own
run and evals, with every price shown as the assumption it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tui.cli_common import _workspace, json_option, print_json, reports_errors

# flag name → (assumption key, help, upper bound)
_PRICE_FLAGS: tuple[tuple[str, str, str, float | None], ...] = (
    ("--gpu-hour-usd", "gpu_hour_usd", "Price of one GPU-hour (USD).", None),
    ("--kwh-usd", "kwh_usd", "Electricity price (USD per kWh).", None),
    (
        "--input-usd-per-mtok",
        "input_usd_per_mtok",
        "Large model's price per million input tokens (USD).",
        None,
    ),
    (
        "--output-usd-per-mtok",
        "output_usd_per_mtok",
        "Large model's price per million output tokens (USD).",
        None,
    ),
    (
        "--candidate-input-usd-per-mtok",
        "candidate_input_usd_per_mtok",
        "Fine-tuned model's price per million input tokens (default: the large model's).",
        None,
    ),
    (
        "--candidate-output-usd-per-mtok",
        "candidate_output_usd_per_mtok",
        "Fine-tuned model's price per million output tokens (default: the large model's).",
        None,
    ),
    (
        "--cached-input-usd-per-mtok",
        "cached_input_usd_per_mtok",
        "Price per million cached input tokens (USD); or give --cache-discount.",
        None,
    ),
    ("--cache-discount", "cache_discount", "Share off the input price for cached tokens.", 1.0),
    ("--cache-hit-rate", "cache_hit_rate", "Share of requests served from the cache.", 1.0),
    ("--gpus", "gpus", "GPUs the run used (default: those in its system.jsonl).", None),
    (
        "--original-training-flops",
        "original_training_flops",
        "Compute of the base model's own training, for the EU AI Act third.",
        None,
    ),
    ("--train-tokens", "train_tokens", "Estimate without a run: tokens per epoch.", None),
    ("--epochs", "epochs", "Estimate without a run: epochs.", None),
    (
        "--throughput-tokens-per-s",
        "throughput_tokens_per_s",
        "Estimate without a run: training tokens per second.",
        None,
    ),
)


def _price_options(command: Any) -> Any:
    for flag, key, text, high in reversed(_PRICE_FLAGS):
        command = click.option(
            flag, key, type=click.FloatRange(min=0, max=high), default=None, help=text
        )(command)
    return command


@click.command()
@click.option("--run", "run_id", default=None, help="Run to cost (default: newest succeeded).")
@click.option("--baseline", default=None, help="Eval of the large model with its long prompt.")
@click.option("--candidate", default=None, help="Eval of the fine-tuned model, short prompt.")
@click.option(
    "--requests-per-day", type=click.FloatRange(min=0), default=None, help="Requests a day."
)
@_price_options
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path),
    default=None,
    help="Local tokenizer folder: count prompt tokens with it and its chat template.",
)
@json_option
@click.pass_context
@reports_errors
def cost(
    ctx: click.Context,
    /,
    run_id: str | None,
    baseline: str | None,
    candidate: str | None,
    requests_per_day: float | None,
    tokenizer: Path | None,
    as_json: bool,
    **prices: float | None,
) -> None:
    """Training cost of a run, inference cost of two prompts, and the break-even.

    Prices are never built in: give them as flags or under [cost] in .ftod/settings.toml.
    """
    from core.decide.cost import CostAssumptions, cost_report
    from core.settings import load_settings
    from store.evals import EvalRepository
    from tui.cli_runs import _ingested_if_writable

    workspace = _workspace(ctx)
    runs, _current = _ingested_if_writable(ctx, showing=run_id)
    assumptions = CostAssumptions.resolve(load_settings(workspace.root), prices)
    estimating = assumptions["train_tokens"].is_set
    if run_id is None and not estimating:
        succeeded = [record for record in runs.list_runs() if record.state == "succeeded"]
        run_id = succeeded[0].run_id if succeeded else None
    report = cost_report(
        workspace=workspace,
        runs=runs,
        evals=EvalRepository(runs.store),
        run_id=run_id,
        baseline_eval=baseline,
        candidate_eval=candidate,
        requests_per_day=requests_per_day,
        assumptions=assumptions,
        tokenizer_dir=tokenizer,
    )
    if as_json:
        print_json(report.as_json())
        return
    _print_report(report)


def _usd(money: Any) -> str:
    return "—" if money.usd is None else f"${money.usd:,.2f}"


def _figure(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _print_report(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    assumptions = Table(title="Assumptions", box=None, header_style="bold", title_justify="left")
    for column in ("assumption", "value", "unit", "from"):
        assumptions.add_column(column)
    for key, assumption in report.assumptions.values.items():
        value = "not set" if assumption.value is None else f"{assumption.value:g}"
        assumptions.add_row(key, value, assumption.unit, assumption.source)
    console.print(assumptions)
    console.print()
    training = report.training
    if training is None:
        console.print(f"[bold]Training[/]: {report.training_reason}")
    else:
        console.print(f"[bold]Training[/] ({training.run_id or 'no run'}: {training.basis})")
        hours = _figure(training.gpu_hours, 3)
        gpu_note = f" ({training.gpu_hours_reason})" if training.gpu_hours_reason else ""
        console.print(f"  GPU-hours {hours}{gpu_note}; cost {_usd(training.gpu_cost)}")
        energy = training.energy
        if energy is not None:
            console.print(
                f"  energy {_figure(energy.kwh, 4)} kWh ({energy.reason}); "
                f"cost {_usd(training.energy_cost)}"
            )
        flops = training.flops
        if flops is not None:
            if flops.total is None:
                console.print(f"  FLOPs unknown: {flops.reason}")
            else:
                share = flops.eu_share or 0.0
                console.print(
                    f"  FLOPs {flops.total:.3g} ({flops.per_token:.3g}/token × "
                    f"{flops.tokens:,} tokens; N_frozen {flops.frozen_parameters:,}, "
                    f"N_lora {flops.lora_parameters:,})"
                )
                console.print(
                    f"  EU AI Act: {share:.2e} of the threshold {flops.eu_threshold:.3g} "
                    f"({flops.eu_threshold_source}): {'above' if share > 1 else 'below'}"
                )
        console.print(f"  one-off cost {_usd(training.total_cost)}")
    console.print()
    if not report.table:
        console.print(f"[bold]Inference[/]: {report.inference_reason}")
    else:
        table = Table(title="Per day", box=None, header_style="bold", title_justify="left")
        for column in ("option", "input tok", "cached tok", "output tok", "per day", "one-off"):
            table.add_column(column)
        for option in report.table:
            table.add_row(
                option.name,
                _figure(option.input_tokens),
                _figure(option.cached_tokens),
                _figure(option.output_tokens),
                _usd(option.per_day),
                _usd(option.one_off),
            )
        console.print(table)
        for side in (report.baseline, report.candidate):
            console.print(f"  {side.eval_label}: tokens {side.counted_with}")
        for item in report.break_even:
            if item.days is None:
                console.print(f"  break-even vs {item.against}: none ({item.reason})")
            else:
                console.print(
                    f"  break-even vs {item.against}: {item.days:,.3g} days "
                    f"(saves {_usd(item.saving_per_day)} a day)"
                )
        reasons = {option.per_day.reason for option in report.table if option.per_day.reason}
        for reason in sorted(reasons):
            console.print(f"  [yellow]{reason}[/]")
    for note in report.notes:
        console.print(f"[yellow]{note}[/]")
