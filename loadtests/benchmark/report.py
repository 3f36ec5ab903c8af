"""The per-endpoint text block, the comparison table and the JSON document."""

import json
import subprocess
from pathlib import Path

from loadtests.benchmark import server_cpu
from loadtests.benchmark.runner import CLOCK, RunSettings
from loadtests.benchmark.stats import COMPARED_FIGURES, PERCENTILE_METHOD

FORMAT_VERSION = 1
RULE = "=" * 60


def block(figures: dict) -> str:
    """One endpoint's text block: success, latencies (average, min, max, p50/p95/p99) and throughput,
    plus failures and the X-Cache hit share.
    """
    requests = figures["iterations"]
    lines = [
        RULE,
        f"Benchmark: {figures['endpoint']}",
        RULE,
        f"Iterations:    {requests}",
        f"Total Time:    {figures['total_time_s']:.2f}s",
        f"Success:       {figures['successes']}/{requests} ({figures['success_pct']:.1f}%)",
    ]
    if figures["passed_over"]:
        lines.append(f"Passed over:   {len(figures['passed_over'])} principal(s) whose path is a 404")
    if figures["failure_statuses"]:
        failed = ", ".join(f"{status} x {count}" for status, count in figures["failure_statuses"].items())
        lines.append(f"Failures:      {failed}")
    lines += ["", "Latency Statistics:"]
    if figures["successes"]:
        for name, key in (("Average", "average_ms"), ("Min", "min_ms"), ("Max", "max_ms")):
            lines.append(f"  {name + ':':<13}{figures[key]:.2f}ms")
        for p in (50, 95, 99):
            lines.append(f"  {f'p{p}:':<13}{figures[f'p{p}_ms']:.2f}ms")
    else:
        lines.append("  (no successful request, so no latency sample)")
    lines += [
        "",
        f"Throughput:    {figures['throughput_rps']:.2f} req/s",
        server_cpu.describe(figures.get("server_cpu") or server_cpu.not_measured("not in this export")),
        server_cpu.describe(figures.get("client_cpu") or server_cpu.not_measured("not in this export"), "Client CPU"),
        f"Cache:         {_cache_line(figures)}",
        RULE,
    ]
    return "\n".join(lines)


def _cache_line(figures: dict) -> str:
    looked_up = figures["cache_hits"] + figures["cache_misses"]
    if not looked_up:
        return "no X-Cache header"
    return f"{figures['cache_hits']}/{looked_up} HIT ({figures['cache_hit_pct']:.1f}%)"


def comparison_table(comparison: dict, baseline_commit: str, tolerance_pct: float) -> str:
    """Each figure beside its baseline with the ratio; regressions beyond tolerance are marked."""
    lines = [
        f"Compared with baseline {baseline_commit[:12]} (regression beyond {tolerance_pct:g}%):",
        f"  {'figure':<16}{'baseline':>12}{'current':>12}{'ratio':>9}",
    ]
    for figure, numbers in comparison.items():
        ratio = "n/a" if numbers["ratio"] is None else f"{numbers['ratio']:.2f}x"
        mark = "  REGRESSION" if numbers["regression"] else ""
        lines.append(
            f"  {figure:<16}{_number(numbers['baseline']):>12}{_number(numbers['current']):>12}{ratio:>9}{mark}"
        )
    return "\n".join(lines)


def _number(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def document(settings: RunSettings, endpoints: list[dict], *, keys_file: Path, git: dict) -> dict:
    """The JSON export: the settings used, the commit, and one object per endpoint with every figure."""
    return {
        "format_version": FORMAT_VERSION,
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "settings": {
            "host": settings.host,
            "iterations": settings.iterations,
            "concurrency": settings.concurrency,
            "warmup": settings.warmup,
            "mode": settings.mode,
            "timeout_s": settings.timeout,
            "keys": keys_file.name,
            "clock": CLOCK,
            "percentiles": PERCENTILE_METHOD,
        },
        "endpoints": {figures["endpoint"]: figures for figures in endpoints},
    }


def load_baseline(path: Path) -> dict:
    try:
        baseline = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the baseline {path}: {exc}") from exc
    if not isinstance(baseline, dict) or not isinstance(baseline.get("endpoints"), dict):
        raise ValueError(f"{path} is not a benchmark JSON export (no 'endpoints' object)")
    for label, figures in baseline["endpoints"].items():
        missing = set(COMPARED_FIGURES) - set(figures)
        if missing:
            raise ValueError(f"{path}: {label} lacks {', '.join(sorted(missing))}")
    return baseline


def git_state(directory: Path) -> dict:
    """The commit measured, and whether the work tree had uncommitted changes; "unknown" outside git."""
    try:
        commit = _git(directory, "rev-parse", "HEAD")
        dirty = bool(_git(directory, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


def _git(directory: Path, *args: str) -> str:
    result = subprocess.run(  # noqa: S603 - fixed arguments, no user input
        ["git", *args],  # noqa: S607 - git from PATH, as a developer runs it
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return result.stdout.strip()
