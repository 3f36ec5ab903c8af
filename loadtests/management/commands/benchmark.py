import argparse
import functools
import json
from pathlib import Path

from django.conf import settings
from django.core.cache import cache as django_cache
from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from billing.demo.keys_csv import read_keys_csv
from loadtests.benchmark import report, server_cpu
from loadtests.benchmark.plot import plot_latencies
from loadtests.benchmark.runner import CLOCK, Runner, RunSettings
from loadtests.benchmark.stats import PERCENTILE_METHOD, compare, summarize
from loadtests.benchmark.targets import ROLES, resolve_targets

# A cold run that still sees this share of hits is not flushing the server's cache.
COLD_HIT_WARNING_PCT = 50


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {number}")
    return number


def non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {number}")
    return number


def non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {value}")
    return number


def positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be more than zero, got {value}")
    return number


class Command(BaseCommand):
    help = (
        "Benchmark the hot endpoints on a running server, each called as a principal of the right role from "
        "the seed_demo keys CSV. Prints a block per endpoint (latencies by a monotonic clock, exact "
        "nearest-rank percentiles, throughput, X-Cache hit share). Any failed request makes the exit status 1."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--endpoint",
            action="append",
            metavar="all|PATH",
            help="'all' (the default: the 7 benchmarked reads) or a path, e.g. /api/v1/credits/balance, the debit "
            "/api/v1/credits/usage (POSTs of 0.0001 credits, each with a fresh Idempotency-Key), or "
            "/api/v1/org-billing/organizations/{id}/subscription ({id} is filled from the principal's org). "
            "Repeat for several.",
        )
        parser.add_argument("--iterations", type=positive_int, default=1000, help="Measured requests per endpoint.")
        parser.add_argument("--output", type=Path, metavar="FILE.json", help="Write every figure as JSON.")
        parser.add_argument("--compare", type=Path, metavar="BASELINE.json", help="An earlier --output to compare.")
        parser.add_argument(
            "--tolerance",
            type=non_negative_float,
            default=10.0,
            help="Percent a figure may worsen before it is marked.",
        )
        parser.add_argument("--host", default="http://127.0.0.1:8000", help="Base URL of the server.")
        parser.add_argument("--concurrency", type=positive_int, default=1, help="Client workers, one connection each.")
        parser.add_argument(
            "--warmup", type=non_negative_int, default=10, help="Unmeasured requests per worker before the clock."
        )
        parser.add_argument(
            "--keys", type=Path, default=settings.VAR_DIR / "demo-keys.csv", help="seed_demo --keys-out CSV."
        )
        parser.add_argument(
            "--role",
            choices=ROLES,
            default="user",
            help="The role whose keys call a PATH that is not a report endpoint.",
        )
        parser.add_argument(
            "--mode",
            choices=("warm", "cold"),
            default="warm",
            help="cold flushes the cache before every measured request (needs the server's REDIS_URL).",
        )
        parser.add_argument("--plot", type=Path, metavar="FILE.png", help="Draw the latency distributions.")
        parser.add_argument("--timeout", type=positive_float, default=30.0, help="Seconds per request.")
        parser.add_argument(
            "--server-pid",
            type=positive_int,
            metavar="PID",
            help="The server's root process (gunicorn's master) for its CPU per request. Default: the process "
            "listening on --host's port, when --host is this machine's loopback; otherwise not measured.",
        )

    def handle(self, *args, **options):
        baseline = self._load_baseline(options["compare"])
        try:
            keys = read_keys_csv(options["keys"])
            targets = resolve_targets(options["endpoint"] or ["all"], keys, options["role"])
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        run_settings = RunSettings(
            host=options["host"],
            iterations=options["iterations"],
            concurrency=options["concurrency"],
            warmup=options["warmup"],
            mode=options["mode"],
            timeout=options["timeout"],
        )
        flush = self._cold_flush() if run_settings.mode == "cold" else None
        server_pid, found_by = server_cpu.locate(run_settings.host, options["server_pid"])
        if options["server_pid"] and server_pid is None:
            raise CommandError(f"--server-pid: {found_by}")
        meter = server_cpu.Meter(server_pid, found_by)
        runs = self._run(targets, run_settings, flush, meter, options["verbosity"])
        endpoints = [summarize(run) for run in runs]
        document = report.document(
            run_settings, endpoints, keys_file=options["keys"], git=report.git_state(settings.BASE_DIR)
        )
        document["settings"]["server_cpu"] = {"pid": server_pid, "found_by": found_by, "source": server_cpu.SOURCE}
        regressions = self._compare(document, baseline, options["tolerance"]) if baseline else []

        self._print(document, options["tolerance"], regressions)
        if options["output"]:
            options["output"].parent.mkdir(parents=True, exist_ok=True)
            options["output"].write_text(json.dumps(document, indent=2) + "\n")
            self.stdout.write(f"Results written to {options['output']}")
        if options["plot"]:
            try:
                plot_latencies(options["plot"], document, baseline)
            except RuntimeError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"Latency plot written to {options['plot']}")

        failed = sum(figures["failures"] for figures in endpoints)
        if failed:
            total = sum(figures["iterations"] for figures in endpoints)
            raise CommandError(f"{failed} of {total} requests failed; see Failures above.", returncode=1)

    def _load_baseline(self, path: Path | None) -> dict | None:
        if path is None:
            return None
        try:
            return report.load_baseline(path)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

    def _cold_flush(self):
        """The flush for cold mode; it has to reach the server's own cache, so it must be Redis."""
        if not hasattr(django_cache, "client"):
            raise CommandError(
                "--mode cold flushes the server's Redis cache: run the command with the REDIS_URL the server uses. "
                "A server without REDIS_URL keeps its cache in process, out of reach."
            )
        try:
            django_cache.clear()
        except Exception as exc:
            raise CommandError(f"cannot flush the cache at REDIS_URL: {exc}") from exc
        return django_cache.clear

    def _run(self, targets, run_settings: RunSettings, flush, meter, verbosity: int):
        runner = Runner(run_settings, flush_cache=flush, meter=meter)
        progress = Progress(
            TextColumn("{task.description:<46}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=verbosity == 0,
        )
        runs = []
        with progress:
            for target in targets:
                task = progress.add_task(
                    target.endpoint.template.removeprefix("/api/v1/"), total=run_settings.iterations
                )
                runs.append(runner.run(target, on_request=functools.partial(progress.advance, task)))
        return runs

    def _compare(self, document: dict, baseline: dict, tolerance: float) -> list[str]:
        document["baseline"] = {"git_commit": baseline.get("git_commit", "unknown"), "tolerance_pct": tolerance}
        regressions = []
        for label, figures in document["endpoints"].items():
            if label not in baseline["endpoints"]:
                continue
            figures["comparison"] = compare(figures, baseline["endpoints"][label], tolerance)
            regressions += [
                f"{label} {figure} x{numbers['ratio']:.2f}"
                for figure, numbers in figures["comparison"].items()
                if numbers["regression"]
            ]
        return regressions

    def _print(self, document: dict, tolerance: float, regressions: list[str]) -> None:
        used = document["settings"]
        self.stdout.write(
            f"{used['host']}: mode {used['mode']}, concurrency {used['concurrency']}, warm-up {used['warmup']} "
            f"per worker, commit {document['git_commit'][:12]}{' (dirty)' if document['git_dirty'] else ''}\n"
            f"Latency: {CLOCK}, from sending the request to reading the whole body. "
            f"Percentiles: exact, {PERCENTILE_METHOD}."
        )
        for figures in document["endpoints"].values():
            self.stdout.write(report.block(figures))
            if "comparison" in figures:
                self.stdout.write(
                    report.comparison_table(figures["comparison"], document["baseline"]["git_commit"], tolerance)
                )
            if used["mode"] == "cold" and (figures["cache_hit_pct"] or 0) > COLD_HIT_WARNING_PCT:
                self.stderr.write(
                    f"warning: {figures['cache_hit_pct']:.0f}% cache hits in cold mode; is REDIS_URL the server's?"
                )
        if "baseline" in document:
            summary = f"{len(regressions)} regression(s) beyond {tolerance:g}%"
            self.stdout.write(summary + (":\n  " + "\n  ".join(regressions) if regressions else "."))
