"""Debit throughput: wrk drives POST /api/v1/credits/usage, each request with a fresh Idempotency-Key.

    python -m loadtests.benchmark.debit_load --host http://127.0.0.1:8000 --keys var/demo-keys.csv
    python -m loadtests.benchmark.debit_load --host http://127.0.0.1:8001 --against http://127.0.0.1:8000 --rounds 3

Two shapes, each at ``--connections`` (16): *many* rotates over up to 200
funded users, *hot* sends every debit to the best-funded one, so all of them
queue on one row lock. Each debit costs 0.0001 credits. Writes must not be
throttled for this: start the server with ``THROTTLE_WRITES=1000000/min``.
With ``--against``, every round measures both servers one after the other
(alternating which goes first), for a side-by-side ratio on a noisy machine.
Prints debits/s, p50/p99, errors and the server's CPU ms per debit (the
gunicorn process group that listens on the host's port), then the medians.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from billing.demo.keys_csv import read_keys_csv
from loadtests.benchmark import server_cpu
from loadtests.benchmark.floor_compare import WRK_MISSING, parse_wrk

SCRIPT = Path(__file__).resolve().parents[2] / "loadtests" / "wrk" / "usage.lua"
MANY_ACCOUNTS = 200
# Enough for every debit of a long run at 0.0001 credits each.
MIN_BALANCE = 5


def funded_keys(host: str, keys_csv: Path) -> list[str]:
    """The `user` keys whose balance covers a run, best-funded first."""
    candidates = [key.api_key for key in read_keys_csv(keys_csv) if key.role == "user"]
    balances = []
    for key in candidates:
        request = urllib.request.Request(f"{host}/api/v1/credits/balance", headers={"Authorization": f"Bearer {key}"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a host the user named
            balances.append((float(json.load(response)["balance"]), key))
    funded = [key for balance, key in sorted(balances, reverse=True) if balance >= MIN_BALANCE]
    if not funded:
        raise SystemExit(f"no `user` in {keys_csv} has {MIN_BALANCE} credits to spend")
    return funded


def run(host: str, keys_file: Path, args) -> dict:
    port = urlsplit(host).port or 80
    pid = server_cpu.find_listener(port)
    before = server_cpu.sample(pid) if pid else None
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    output = subprocess.run(  # noqa: S603 - fixed command
        [*command, "-s", str(SCRIPT), f"{host}/api/v1/credits/usage"],
        env={"KEYS_FILE": str(keys_file), "RUN_ID": uuid.uuid4().hex, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        check=True,
        timeout=args.duration + 60,
    ).stdout
    figures = parse_wrk(output)
    cpu = (
        server_cpu.server_figures(before, server_cpu.sample(pid), figures["requests"])
        if before and pid
        else server_cpu.not_measured("no local listener")
    )
    return {**figures, "server_cpu_ms_per_request": cpu.get("ms_per_request")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.benchmark.debit_load", description=__doc__)
    parser.add_argument("--host", default="http://127.0.0.1:8000")
    parser.add_argument("--against", help="a second server (the baseline), measured alternately")
    parser.add_argument("--keys", type=Path, default=Path("var/demo-keys.csv"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=15, help="seconds per run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, help="write every run and the medians here as JSON")
    args = parser.parse_args(argv)

    if shutil.which("wrk") is None:
        print(f"error: {WRK_MISSING}", file=sys.stderr)
        return 2
    hosts = [args.host, *([args.against] if args.against else [])]
    funded = funded_keys(args.host, args.keys)
    runs: dict[str, list[dict]] = {f"{host} {shape}": [] for host in hosts for shape in ("many", "hot")}
    with tempfile.TemporaryDirectory() as folder:
        shapes = {"many": Path(folder) / "many.txt", "hot": Path(folder) / "hot.txt"}
        shapes["many"].write_text("\n".join(funded[:MANY_ACCOUNTS]) + "\n")
        shapes["hot"].write_text(funded[0] + "\n")
        for round_number in range(1, args.rounds + 1):
            for host in hosts if round_number % 2 else hosts[::-1]:
                for shape, keys_file in shapes.items():
                    figures = run(host, keys_file, args)
                    runs[f"{host} {shape}"].append(figures)
                    print(f"round {round_number}  {host} {shape:<4} {describe(figures)}", flush=True)
    medians = {name: _medians(rows) for name, rows in runs.items()}
    print("\nmedians")
    for name, figures in medians.items():
        print(f"  {name:<40} {describe(figures)}")
    if args.output:
        args.output.write_text(json.dumps({"runs": runs, "medians": medians}, indent=2))
    return 0 if all(run["non_2xx"] + run["socket_errors"] == 0 for rows in runs.values() for run in rows) else 1


def describe(figures: dict) -> str:
    cpu = figures["server_cpu_ms_per_request"]
    errors = figures["non_2xx"] + figures["socket_errors"]
    return (
        f"{figures['rps']:>7.1f} debits/s  p50 {figures['p50_ms']:.1f} ms  p99 {figures['p99_ms']:.1f} ms  "
        f"server CPU {f'{cpu:.2f}' if cpu is not None else 'n/a'} ms/debit  errors {errors:g}"
    )


def _medians(rows: list[dict]) -> dict:
    figures = ("rps", "p50_ms", "p99_ms", "server_cpu_ms_per_request", "non_2xx", "socket_errors")
    present = {figure: [row[figure] for row in rows if row[figure] is not None] for figure in figures}
    return {figure: statistics.median(values) if values else None for figure, values in present.items()}


if __name__ == "__main__":
    raise SystemExit(main())
