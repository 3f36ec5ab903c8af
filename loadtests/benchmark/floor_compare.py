"""The floor against the balance endpoint: alternating wrk runs, the same gunicorn config for both.

    python -m loadtests.benchmark.floor_compare --keys var/demo-keys.csv --rounds 5 --duration 15

Starts two gunicorns with ``config/gunicorn.py`` on DATABASE_URL
and REDIS_URL: the API (``config.settings``) and the floor
(``config.settings_floor``, one DRF view and one django-redis
GET). The first ``user`` of the keys CSV is the one warm key: its balance is
read once (a miss fills the cache), then must answer ``X-Cache: HIT``. Each
round runs wrk against the floor, then against the balance (or the other way
round on odd rounds, so neither always goes first), and samples the server
process group's CPU before and after each run (``server_cpu``). Prints every
run, then the medians and the ratio balance/floor.
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TypedDict

from billing.demo.keys_csv import read_keys_csv
from loadtests.benchmark import server_cpu

PROJECT_DIR = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
BALANCE_PATH = "/api/v1/credits/balance"
FLOOR_PATH = "/floor"
WRK_MISSING = "wrk is not installed: `sudo apt-get install -y wrk` (Debian/Ubuntu package wrk)"
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


class WrkFigures(TypedDict):
    requests: int
    rps: float
    non_2xx: int
    socket_errors: int
    p50_ms: float | None
    p99_ms: float | None


def parse_wrk(output: str) -> WrkFigures:
    """Requests, req/s, non-2xx/3xx answers, socket errors and the p50/p99 latencies from ``wrk --latency``."""
    requests = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not requests or not rps:
        raise ValueError(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests": int(requests.group(1)),
        "rps": float(rps.group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(count) for count in errors.groups()) if errors else 0,
        "p50_ms": _latency_ms(output, 50),
        "p99_ms": _latency_ms(output, 99),
    }


def _latency_ms(output: str, percent: int) -> float | None:
    found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    return round(float(found.group(1)) * UNITS_MS[found.group(2)], 3) if found else None


def first_user_key(keys: Path) -> str:
    for key in read_keys_csv(keys):
        if key.role == "user":
            return key.api_key
    raise ValueError(f"{keys} has no key of role user")


def get(url: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback URL built here
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return response.status, response.headers.get("X-Cache") or ""


class Server:
    """A gunicorn with the project's config file on a loopback port, stopped by ``stop``."""

    def __init__(self, settings_module: str, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                raise RuntimeError(f"port {port} is already in use; pick another (--floor-port, --balance-port)")
        env = dict(os.environ, DJANGO_SETTINGS_MODULE=settings_module, BIND=f"127.0.0.1:{port}")
        env.update(GUNICORN_ACCESS_LOG="", DEBUG="0", SECURE_SSL_REDIRECT="0")
        with log.open("w") as out:
            self.process = subprocess.Popen(  # noqa: S603 - fixed command
                [str(GUNICORN), "-c", "config/gunicorn.py", "config.wsgi"],
                cwd=PROJECT_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn ({settings_module}) exited:\n{log.read_text()[-2000:]}")
            try:
                get(self.url + "/healthz")
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn ({settings_module}) did not answer /healthz within 60 s")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def run_wrk(url: str, headers: list[str], args) -> str:
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency", url]
    for header in headers:
        command[1:1] = ["-H", header]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=args.duration + 60).stdout  # noqa: S603


def measure(server: Server, url: str, headers: list[str], args) -> dict:
    before = server_cpu.sample(server.pid)
    output = run_wrk(url, headers, args)
    after = server_cpu.sample(server.pid)
    figures = parse_wrk(output)
    cpu = server_cpu.server_figures(before, after, figures["requests"], "started here")
    return {**figures, "server_cpu_ms_per_request": cpu["ms_per_request"], "server_processes": cpu["processes"]}


def median(runs: list[dict], figure: str) -> float | None:
    values = [run[figure] for run in runs if run[figure] is not None]
    return statistics.median(values) if values else None


def summarize(runs: dict[str, list[dict]]) -> dict:
    medians = {
        name: {figure: median(rows, figure) for figure in ("rps", "server_cpu_ms_per_request", "p50_ms", "p99_ms")}
        for name, rows in runs.items()
    }
    ratios = {figure: _ratio(medians["balance"][figure], medians["floor"][figure]) for figure in medians["floor"]}
    return {"medians": medians, "ratio_balance_over_floor": ratios}


def _ratio(balance: float | None, floor: float | None) -> float | None:
    return round(balance / floor, 3) if balance and floor else None


def print_run(round_number: int, name: str, run: dict) -> None:
    errors = run["non_2xx"] + run["socket_errors"]
    print(
        f"round {round_number}  {name:<8} {run['rps']:>9.1f} req/s  {run['server_cpu_ms_per_request']:>7.3f} ms CPU/req"
        f"  p50 {run['p50_ms']} ms  p99 {run['p99_ms']} ms  {run['requests']} requests, {errors} errors",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/floor_vs_balance.sh", description=__doc__)
    parser.add_argument("--keys", type=Path, default=Path("var/demo-keys.csv"), help="seed_demo --keys-out CSV")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each target (default 5)")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run (default 15)")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c (default 16)")
    parser.add_argument("--floor-port", type=int, default=18601)
    parser.add_argument("--balance-port", type=int, default=18602)
    parser.add_argument("--logs", type=Path, default=Path("results"), help="gunicorn logs go here")
    parser.add_argument("--output", type=Path, metavar="FILE.json", help="every run and the medians as JSON")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print(f"error: {WRK_MISSING}", file=sys.stderr)
        return 2
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        print("error: set DATABASE_URL and REDIS_URL (the floor's one GET goes to Redis)", file=sys.stderr)
        return 2
    auth = f"Authorization: Bearer {first_user_key(args.keys)}"
    args.logs.mkdir(parents=True, exist_ok=True)
    servers: dict[str, Server] = {}
    try:
        return _compare(args, auth, servers)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for server in servers.values():
            server.stop()


def _compare(args: argparse.Namespace, auth: str, servers: dict[str, Server]) -> int:
    if True:
        servers["floor"] = Server("config.settings_floor", args.floor_port, args.logs / "floor.log")
        servers["balance"] = Server("config.settings", args.balance_port, args.logs / "balance.log")
        targets = {
            "floor": (servers["floor"].url + FLOOR_PATH, []),
            "balance": (servers["balance"].url + BALANCE_PATH, [auth]),
        }
        for url, headers in targets.values():  # fill the caches: every measured request is a hit
            get(url, dict(header.split(": ", 1) for header in headers))
        status, cache = get(targets["balance"][0], dict([auth.split(": ", 1)]))
        if status != 200 or cache.upper() != "HIT":
            print(f"error: the warm balance key answered {status} X-Cache {cache!r}, not 200 HIT", file=sys.stderr)
            return 1
        runs: dict[str, list[dict]] = {"floor": [], "balance": []}
        print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} rounds, alternating")
        for round_number in range(1, args.rounds + 1):
            order = ["floor", "balance"] if round_number % 2 else ["balance", "floor"]
            for name in order:
                run = measure(servers[name], *targets[name], args)
                runs[name].append(run)
                print_run(round_number, name, run)
        summary = summarize(runs)
    print_summary(summary)
    if args.output:
        args.output.write_text(
            json.dumps(
                {"settings": vars(args) | {"keys": args.keys.name}, "runs": runs, **summary}, indent=2, default=str
            )
            + "\n"
        )
    return 0


def print_summary(summary: dict) -> None:
    print(f"\n{'median':<10}{'req/s':>10}{'CPU ms/req':>12}{'p50 ms':>9}{'p99 ms':>9}")
    for name in ("floor", "balance"):
        m = summary["medians"][name]
        print(
            f"{name:<10}{m['rps']:>10.1f}{m['server_cpu_ms_per_request']:>12.3f}{m['p50_ms']:>9.2f}{m['p99_ms']:>9.2f}"
        )
    ratios = summary["ratio_balance_over_floor"]
    cells = [ratios[figure] for figure in ("rps", "server_cpu_ms_per_request", "p50_ms", "p99_ms")]
    print(
        f"{'ratio b/f':<10}"
        + "".join(f"{'-' if v is None else f'{v:.3f}':>{w}}" for v, w in zip(cells, (10, 12, 9, 9), strict=True))
    )


if __name__ == "__main__":
    sys.exit(main())
