"""Per-endpoint figures from the raw samples, and their comparison with a baseline.

Percentiles are exact, over every sample, by the nearest-rank method: the
p-th percentile of n sorted samples is the sample at rank ceil(p/100 * n), so
it is always a latency that was actually measured.
"""

from collections.abc import Sequence

from loadtests.benchmark.runner import EndpointRun

PERCENTILE_METHOD = "nearest-rank over all samples"
PERCENTILES = (50, 95, 99)
NS_PER_MS = 1_000_000

LOWER_IS_BETTER = "lower"
HIGHER_IS_BETTER = "higher"
# Every figure --compare puts beside the baseline, and which way is better.
COMPARED_FIGURES = {
    "average_ms": LOWER_IS_BETTER,
    "min_ms": LOWER_IS_BETTER,
    "max_ms": LOWER_IS_BETTER,
    "p50_ms": LOWER_IS_BETTER,
    "p95_ms": LOWER_IS_BETTER,
    "p99_ms": LOWER_IS_BETTER,
    "throughput_rps": HIGHER_IS_BETTER,
    "success_pct": HIGHER_IS_BETTER,
    "cache_hit_pct": HIGHER_IS_BETTER,
}


def percentile(sorted_samples: Sequence[int | float], p: int) -> int | float:
    """Nearest-rank percentile of already sorted samples; p is a whole percentage from 1 to 100."""
    if not sorted_samples:
        raise ValueError("no samples")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    rank = -(-p * len(sorted_samples) // 100)  # ceil without floating point
    return sorted_samples[rank - 1]


def summarize(run: EndpointRun) -> dict:
    """Every figure of one endpoint's run, as it goes into the JSON export."""
    samples = sorted(run.latencies_ns)
    successes, requests = len(samples), run.requests
    wall_s = run.wall_ns / 1e9
    cache_hits, cache_misses = run.cache["HIT"], run.cache["MISS"]
    looked_up = cache_hits + cache_misses
    return {
        "endpoint": run.endpoint.label,
        "role": run.endpoint.role,
        "paths": run.paths,
        "principals": run.principals,
        "passed_over": run.passed_over,
        "iterations": requests,
        "total_time_s": round(wall_s, 4),
        "successes": successes,
        "failures": requests - successes,
        "success_pct": round(100 * successes / requests, 2) if requests else 0.0,
        "failure_statuses": dict(sorted(run.failures.items())),
        "average_ms": _ms(sum(samples) / successes) if samples else None,
        "min_ms": _ms(samples[0]) if samples else None,
        "max_ms": _ms(samples[-1]) if samples else None,
        **{f"p{p}_ms": _ms(percentile(samples, p)) if samples else None for p in PERCENTILES},
        "throughput_rps": round(successes / wall_s, 2) if wall_s > 0 else 0.0,
        "cache_hits": cache_hits,
        "cache_misses": cache_misses,
        "cache_hit_pct": round(100 * cache_hits / looked_up, 2) if looked_up else None,
        "server_cpu": run.cpu.get("server_cpu", {"measured": False, "reason": "no meter"}),
        "client_cpu": run.cpu.get("client_cpu", {"measured": False, "reason": "no meter"}),
        "samples_ms": [_ms(sample) for sample in run.latencies_ns],
    }


def _ms(nanoseconds: float) -> float:
    return round(nanoseconds / NS_PER_MS, 3)


def compare(current: dict, baseline: dict, tolerance_pct: float) -> dict:
    """Each figure beside its baseline: the ratio current/baseline, and whether it regressed beyond tolerance.

    A lower-is-better figure regresses when the ratio exceeds 1 + tolerance; a
    higher-is-better one when it falls below 1 - tolerance. A figure missing on
    either side, or a zero baseline, has no ratio and is never a regression.
    """
    comparison = {}
    for figure, better in COMPARED_FIGURES.items():
        now, before = current.get(figure), baseline.get(figure)
        ratio = now / before if now is not None and before else None
        if ratio is None:
            regression = False
        elif better == LOWER_IS_BETTER:
            regression = ratio > 1 + tolerance_pct / 100
        else:
            regression = ratio < 1 - tolerance_pct / 100
        comparison[figure] = {"baseline": before, "current": now, "ratio": ratio, "regression": regression}
    return comparison
