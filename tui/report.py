"""Human-readable CLI output (rich tables) for the data commands."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.checks.registry import CHECK_IDS
from core.safetext import escape_control

FINDINGS_SHOWN_PER_CHECK = 5
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _lines(lines: Sequence[int], limit: int = 8) -> str:
    shown = ", ".join(map(str, lines[:limit]))
    return shown + (f" … (+{len(lines) - limit})" if len(lines) > limit else "")


def _shown(text: object) -> str:
    """User text inside markup: control characters escaped for the terminal, brackets for
    rich."""
    return escape(escape_control(str(text)))


def print_check_report(report: Any) -> None:
    console = _console()
    summary = report.summary
    console.print(
        f"[bold]{_shown(report.path)}[/]  {report.rows} rows, {report.valid_rows} valid, "
        f"format {report.source_format}, sha256 {report.sha256[:12]}"
    )
    tokens = summary["tokens"]["total"]
    console.print(
        f"tokens ({report.token_counting}): p50 {tokens['p50']:.0f}, p90 {tokens['p90']:.0f}, "
        f"max {tokens['max']}; turns mean {summary['turns']['mean']}; "
        f"missing system prompt {summary['missing_system_share']:.0%}"
    )
    by_check: dict[str, list[Any]] = defaultdict(list)
    for finding in report.findings:
        by_check[finding.check].append(finding)
    if not report.findings:
        console.print("[green]No problems found.[/]")
        return
    order = [c for c in CHECK_IDS if c in by_check] + sorted(set(by_check) - set(CHECK_IDS))
    for check in order:
        findings = by_check[check]
        worst = "error" if any(f.severity == "error" for f in findings) else findings[0].severity
        console.print(f"\n[{SEVERITY_STYLE.get(worst, '')}]{check}[/] — {len(findings)} finding(s)")
        for finding in findings[:FINDINGS_SHOWN_PER_CHECK]:
            where = f"line {_lines(finding.lines)}"
            if finding.other is not None:
                other = escape_control(str(finding.other.path))
                where += f" ↔ {other}:{_lines(finding.other.lines, 4)}"
            console.print(f"  {where}: {escape_control(finding.message)}", markup=False)
        if len(findings) > FINDINGS_SHOWN_PER_CHECK:
            console.print(
                f"  … {len(findings) - FINDINGS_SHOWN_PER_CHECK} more (use --json for all)"
            )
    audit = getattr(report, "knowledge_audit", None)
    if audit is not None and audit.turns_with_volatile_facts:
        kinds = ", ".join(f"{kind} {count}" for kind, count in audit.by_kind.items() if count)
        console.print(
            f"\nknowledge audit: {audit.share:.0%} of {audit.assistant_turns} assistant turns "
            f"state volatile facts ({kinds}); {len(audit.drift)} drifted across dates",
            markup=False,
        )
    console.print(
        f"\n[bold]{report.error_count} error(s), {report.warning_count} warning(s)[/] "
        f"in {report.rows} rows"
    )


def print_dataset_list(listings: Sequence[Any]) -> None:
    console = _console()
    if not listings:
        console.print("No datasets yet. Add one with `ftod data add FILE --name NAME`.")
        return
    table = Table("name", "vers", "rows", "sha256", "errors", "warn", "created")
    table.columns[0].no_wrap = True
    table.columns[0].overflow = "fold"
    for item in listings:
        table.add_row(
            item.name,
            str(item.versions),
            str(item.rows),
            item.sha256[:12],
            str(item.errors),
            str(item.warnings),
            item.created_at.strftime("%Y-%m-%d"),
        )
    console.print(table)


def print_version(
    version: Any,
    counts: Sequence[tuple[str, str, int, int]],
    findings: Sequence[Any],
    splits: Sequence[Any],
) -> None:
    console = _console()
    console.print(
        f"[bold]{version.ref}[/]  sha256 {version.sha256[:12]}  {version.source_format}  "
        f"from {_shown(version.source_path)}"
    )
    console.print(
        f"{version.rows_total} rows, {version.rows_valid} valid; {version.errors} errors, "
        f"{version.warnings} warnings; tokens {version.token_counting}, "
        f"max_seq_len {version.max_seq_len}"
    )
    summary = version.summary
    if summary.get("labels"):
        counted = summary["labels"].items()
        console.print("labels: " + ", ".join(f"{_shown(k)} {v}" for k, v in counted))
    if summary.get("slices"):
        counted = summary["slices"].items()
        console.print("slices: " + ", ".join(f"{_shown(k)} {v}" for k, v in counted))
    if counts:
        table = Table("check", "severity", "findings", "rows")
        for check, severity, number, rows in counts:
            table.add_row(
                check, f"[{SEVERITY_STYLE.get(severity, '')}]{severity}[/]", str(number), str(rows)
            )
        console.print(table)
    for finding in findings:
        console.print(
            f"  {finding.check} line {_lines(finding.lines)}: {escape_control(finding.message)}",
            markup=False,
        )
    for split in splits:
        parts = ", ".join(
            f"{name} {info['rows']}" for name, info in split.manifest["splits"].items()
        )
        console.print(
            f"split #{split.split_id} (seed {split.seed}, group_by {split.group_by or '-'}, "
            f"stratify {split.stratify or '-'}): {parts}; "
            f"leakage findings {split.manifest.get('leakage_findings', 0)}"
        )


def print_split(outcome: Any) -> None:
    console = _console()
    manifest = outcome.split.manifest
    table = Table("split", "rows", "units", "sha256")
    for name, info in manifest["splits"].items():
        table.add_row(name, str(info["rows"]), str(info["units"]), info["sha256"][:12])
    console.print(
        f"[bold]{outcome.version.ref}[/] split #{outcome.split.split_id} ({manifest['method']})"
    )
    console.print(table)
    if manifest.get("rows_missing_group"):
        console.print(
            f"[yellow]{manifest['rows_missing_group']} row(s) lack "
            f"metadata.{manifest['group_by']}; "
            "each is its own group.[/]"
        )
    if outcome.findings:
        console.print(f"[bold red]leakage across splits: {len(outcome.findings)} row(s)[/]")
        for finding in outcome.findings[:10]:
            console.print(
                f"  line {finding.lines[0]}: {escape_control(finding.message)}", markup=False
            )
    else:
        console.print("[green]No leakage across splits.[/]")
