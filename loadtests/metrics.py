"""Custom metrics of a Locust run: X-Cache hit rate per endpoint, status codes, workflow verdicts.

Counted per process; Locust workers ship theirs to the master with each stats
report (events.report_to_master / worker_report), so the master's figures
cover every worker. Written at the end as CSV, JSON, a printed table and a
section appended to Locust's HTML report (Locust has no hook to add a table
to its own report, so the section is plain HTML after its page).
"""

import csv
import html
import json
from collections import Counter, defaultdict
from pathlib import Path

CACHE_HIT, CACHE_MISS = "HIT", "MISS"
TOTAL = "Aggregated"
PERCENTILES = (0.5, 0.95, 0.99)


class RunCounters:
    def __init__(self):
        self.cache: dict[str, Counter] = defaultdict(Counter)
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.events: Counter = Counter()

    def record_response(self, name: str, status: int, x_cache: str | None) -> None:
        self.statuses[name][str(status)] += 1
        if x_cache in (CACHE_HIT, CACHE_MISS):
            self.cache[name][x_cache] += 1

    def count(self, event: str, amount: int = 1) -> None:
        self.events[event] += amount

    def drain(self) -> dict:
        """What a worker sends to the master: its counts since the last report, then zero."""
        data = {
            "cache": {name: dict(counts) for name, counts in self.cache.items()},
            "statuses": {name: dict(counts) for name, counts in self.statuses.items()},
            "events": dict(self.events),
        }
        self.reset()
        return data

    def merge(self, data: dict) -> None:
        for name, counts in data.get("cache", {}).items():
            self.cache[name].update(counts)
        for name, counts in data.get("statuses", {}).items():
            self.statuses[name].update(counts)
        self.events.update(data.get("events", {}))

    def reset(self) -> None:
        self.cache.clear()
        self.statuses.clear()
        self.events.clear()

    def cache_rows(self) -> list[dict]:
        """One row per endpoint answering with X-Cache, then the total."""
        rows = [_cache_row(name, counts) for name, counts in sorted(self.cache.items())]
        total: Counter[str] = Counter()
        for counts in self.cache.values():
            total.update(counts)
        return [*rows, _cache_row(TOTAL, total)]


def _cache_row(name: str, counts: Counter) -> dict:
    hits, misses = counts[CACHE_HIT], counts[CACHE_MISS]
    looked_up = hits + misses
    return {"name": name, "hits": hits, "misses": misses, "hit_rate": hits / looked_up if looked_up else None}


def endpoint_figures(entry) -> dict:
    """Locust's figures for one stats entry (percentiles come from its rounded response-time buckets)."""
    return {
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "failure_rate": entry.fail_ratio,
        "rps": entry.total_rps,
        "avg_ms": entry.avg_response_time,
        **{
            f"p{round(q * 100)}_ms": entry.get_response_time_percentile(q) if entry.num_requests else None
            for q in PERCENTILES
        },
        "max_ms": entry.max_response_time,
    }


def write_outputs(results_dir: Path, summary: dict, counters: RunCounters, html_report: str | None) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "locust_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    with (results_dir / "locust_cache_hit_rate.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["name", "hits", "misses", "hit_rate"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(counters.cache_rows())
    if html_report and Path(html_report).is_file():
        append_html_section(Path(html_report), summary)


def append_html_section(report: Path, summary: dict) -> None:
    rows = "".join(
        f"<tr><td>{html.escape(row['name'])}</td><td>{row['hits']}</td><td>{row['misses']}</td>"
        f"<td>{format_rate(row['hit_rate'])}</td></tr>"
        for row in summary["cache_hit_rate"]
    )
    verdicts = "".join(
        f"<li>{html.escape(verdict['name'])}: {verdict['observed']} "
        f"{'ok' if verdict['passed'] else '<strong>BREACHED</strong>'}</li>"
        for verdict in summary["thresholds"]
    )
    section = (
        '<section id="ops-center-load-test" style="font-family:sans-serif;margin:2em">'
        "<h2>Cache hit rate (X-Cache)</h2><table border=1 cellpadding=4>"
        f"<tr><th>Endpoint</th><th>Hits</th><th>Misses</th><th>Hit rate</th></tr>{rows}</table>"
        f"<h2>Thresholds</h2><ul>{verdicts}</ul></section>"
    )
    text = report.read_text(encoding="utf-8")
    # The last one: Locust's inlined JavaScript contains the string "</body>" too.
    head, marker, tail = text.rpartition("</body>")
    report.write_text(head + section + marker + tail if marker else text + section, encoding="utf-8")


def format_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def print_report(summary: dict) -> None:
    lines = ["", "Cache hit rate (X-Cache)", f"{'endpoint':<32} {'hits':>9} {'misses':>9} {'hit rate':>9}"]
    for row in summary["cache_hit_rate"]:
        lines.append(f"{row['name']:<32} {row['hits']:>9} {row['misses']:>9} {format_rate(row['hit_rate']):>9}")
    lines += ["", "Thresholds"]
    lines += [
        f"  {'ok      ' if verdict['passed'] else 'BREACHED'} {verdict['name']} (observed {verdict['observed']})"
        for verdict in summary["thresholds"]
    ]
    events = summary["events"]
    if events:
        lines += ["", "Workflow and write outcomes"] + [f"  {name}: {count}" for name, count in sorted(events.items())]
    print("\n".join(lines), flush=True)
