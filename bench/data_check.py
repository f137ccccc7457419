"""Benchmark of `ftod data check` on N synthetic chat rows with planted duplicates.

Runs, in one process and one run:
1. the full check (every check, as `ftod data check` runs it) on N rows written to a temp
   file: seconds, rows/s, peak RSS (this process and its scan workers), and recall of the
   planted exact and near duplicates;
2. the near-duplicate stage alone against datasketch.MinHashLSH with the same shingles and
   threshold, on the same texts (`--peer-rows`, default min(N, 100k): datasketch needs
   minutes per 100k rows in pure Python), with recall on planted near-copies for both.

The final line is JSON. Usage: python bench/data_check.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.synthetic import write_rows  # noqa: E402
from core.checks.minhash import DEFAULT_NUM_PERM, DEFAULT_THRESHOLD  # noqa: E402
from core.scan import CheckOptions, check_file  # noqa: E402


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, workers) / 1024, 1)


def planted_recall(
    findings: list[dict[str, object]], check: str, pairs: list[tuple[int, int]]
) -> float:
    if not pairs:
        return 1.0
    group_of: dict[int, int] = {}
    for index, finding in enumerate(findings):
        if finding["check"] in check.split("|"):
            for line in finding["lines"]:  # type: ignore[attr-defined]
                group_of[line] = index
    caught = sum(1 for a, b in pairs if a in group_of and group_of.get(a) == group_of.get(b))
    return round(caught / len(pairs), 4)


def full_check(rows: int, seed: int, folder: Path) -> dict[str, object]:
    path = folder / "bench.jsonl"
    started = time.perf_counter()
    planted = write_rows(path, rows, seed=seed)
    generated = time.perf_counter() - started
    print(
        f"generated {rows} rows ({path.stat().st_size / 1e6:.0f} MB) in {generated:.1f}s",
        file=sys.stderr,
    )
    started = time.perf_counter()
    report = check_file(path, CheckOptions())
    seconds = time.perf_counter() - started
    findings = [f.as_json() for f in report.findings]
    counts: dict[str, int] = {}
    for finding in findings:
        counts[str(finding["check"])] = counts.get(str(finding["check"]), 0) + 1
    return {
        "rows": report.rows,
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "seconds": round(seconds, 2),
        "rows_per_s": round(report.rows / seconds),
        "peak_rss_mb": peak_rss_mb(),
        "findings": counts,
        "exact_dup_recall": planted_recall(findings, "exact_duplicate", planted["exact"]),
        # A near copy of a row that itself has an exact copy is reported with its group.
        "near_dup_recall": planted_recall(
            findings, "near_duplicate|exact_duplicate", planted["near"]
        ),
    }


def near_dup_versus_datasketch(rows: int) -> dict[str, object]:
    from bench.near_dup_peer import (
        _score,
        datasketch_near_dup_pairs,
        ftod_near_dup_pairs,
        synthetic_texts,
    )

    texts, planted = synthetic_texts(rows, 0.05)
    ftod_pairs, ftod_seconds = ftod_near_dup_pairs(texts, DEFAULT_THRESHOLD)
    ftod_score = _score(texts, ftod_pairs, planted, DEFAULT_THRESHOLD)
    peer_pairs, peer_seconds = datasketch_near_dup_pairs(texts, DEFAULT_THRESHOLD, DEFAULT_NUM_PERM)
    peer_score = _score(texts, peer_pairs, planted, DEFAULT_THRESHOLD)
    return {
        "peer_rows": rows,
        "threshold": DEFAULT_THRESHOLD,
        "num_perm": DEFAULT_NUM_PERM,
        "ftod_near_dup_seconds": round(ftod_seconds, 2),
        "ftod_near_dup_recall": round(ftod_score["recall"], 4),
        "ftod_near_dup_precision": round(ftod_score["precision_exact"], 4),
        "datasketch_near_dup_seconds": round(peer_seconds, 2),
        "datasketch_near_dup_recall": round(peer_score["recall"], 4),
        "datasketch_near_dup_precision": round(peer_score["precision_exact"], 4),
        "near_dup_speedup": round(peer_seconds / ftod_seconds, 1) if ftod_seconds else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--peer-rows", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-peer", action="store_true", help="skip the datasketch comparison")
    args = parser.parse_args()
    result: dict[str, object] = {
        "bench": "data_check",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    with tempfile.TemporaryDirectory() as folder:
        result.update(full_check(args.rows, args.seed, Path(folder)))
    if not args.skip_peer:
        peer_rows = args.peer_rows or min(args.rows, 100_000)
        result.update(near_dup_versus_datasketch(peer_rows))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
