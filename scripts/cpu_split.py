"""CPU per request split by tier: the app (gunicorn), PostgreSQL and Redis, over one load run.

    python scripts/cpu_split.py --app-port 8000 --redis-port 6379 --database ops_center -- \\
        loadtests/run_load_tests.sh --tool k6 --shape constant --rate 250 --duration 30 --results results/split

Samples /proc (utime + stime) before and after COMMAND runs, for:

* the app: the gunicorn master listening on --app-port and its workers
  (loadtests.benchmark.server_cpu, the figure the load runner prints too);
* PostgreSQL: the backends connected to --database (from pg_stat_activity, so
  other databases of a shared server are left out; its WAL writer,
  checkpointer and background writer are not counted and are shared anyway).
  They are polled every --poll seconds during the run, so a backend that
  starts and ends within it (CONN_MAX_AGE recycles connections) counts up to
  its last poll;
* Redis: the redis-server listening on --redis-port, whole (give it a Redis of
  its own: another tenant's commands would be counted).

The requests are read from the run's k6 summary (--summary, default
RESULTS/k6_summary.json of the command's --results), or from debit_load's
--output (every run's debits), or given with --requests.
Prints ms of CPU per request for each tier and their sum, as JSON too (--output).
Run it on the machine that serves all three; it reads /proc, so Linux only.
"""

import argparse
import json
import subprocess
import sys
import threading
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadtests.benchmark import server_cpu  # noqa: E402


def backend_pids(conn: psycopg.Connection, database: str) -> set[int]:
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [database]
    ).fetchall()
    return {pid for (pid,) in rows}


def cpu_of(pids: set[int]) -> dict[int, float]:
    """CPU seconds of each process still running; one that has ended is left out, not read as 0."""
    readings = {pid: server_cpu.read_cpu_s(pid) for pid in pids}
    return {pid: cpu_s for pid, cpu_s in readings.items() if cpu_s is not None}


class BackendWatch:
    """The last CPU reading of every backend of the database seen since start(), polled in a thread.

    A backend that ends keeps its last reading, so at most one poll interval of its CPU is lost.
    """

    def __init__(self, dsn: str, database: str, interval_s: float) -> None:
        self._conn = psycopg.connect(dsn, autocommit=True)
        self._database = database
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.last_cpu: dict[int, float] = {}

    def poll(self) -> set[int]:
        """Read the live backends' CPU; the pids of those live now."""
        live = backend_pids(self._conn, self._database)
        self.last_cpu.update(cpu_of(live))
        return live

    def start(self) -> dict[int, float]:
        self.poll()
        at_start = dict(self.last_cpu)
        self._thread.start()
        return at_start

    def stop(self) -> set[int]:
        self._stop.set()
        self._thread.join()
        live = self.poll()
        self._conn.close()
        return live

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.poll()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app-port", type=int, required=True)
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--database", required=True, help="the app's database name on the PostgreSQL server")
    parser.add_argument("--dsn", default="postgres://postgres@127.0.0.1:5432/postgres", help="to read pg_stat_activity")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between readings of the backends' CPU")
    parser.add_argument("--summary", type=Path, help="the run's k6_summary.json (default: RESULTS/k6_summary.json)")
    parser.add_argument("--requests", type=int, help="requests served, when the command writes no k6 summary")
    parser.add_argument("--output", type=Path)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the load command after --")
    if args.requests is None and args.summary is None and not {"--results", "--output"} & set(command):
        parser.error("cannot count the requests: give --requests or --summary, or --results/--output to the command")

    app_root = server_cpu.find_listener(args.app_port)
    redis_root = server_cpu.find_listener(args.redis_port)
    if app_root is None or redis_root is None:
        parser.error(f"nothing listens on {'--app-port' if app_root is None else '--redis-port'}")
    backends = BackendWatch(args.dsn, args.database, args.poll)
    app_before, redis_before = server_cpu.sample(app_root), server_cpu.sample(redis_root)
    pg_before = backends.start()

    done = subprocess.run(command, cwd=ROOT, check=False)

    app_after, redis_after = server_cpu.sample(app_root), server_cpu.sample(redis_root)
    pg_live = backends.stop()
    # A backend that started during the run counts from zero; one that ended, up to its last poll.
    pg_cpu = sum(last - pg_before.get(pid, 0.0) for pid, last in backends.last_cpu.items())

    requests = args.requests
    if requests is None:
        summary = args.summary
        if summary is None and "--results" in command:
            summary = ROOT / command[command.index("--results") + 1] / "k6_summary.json"
        if summary is None and "--output" in command:  # python -m loadtests.benchmark.debit_load --output
            summary = ROOT / command[command.index("--output") + 1]
        data = json.loads(Path(summary).read_text())
        # A k6 summary has "requests"; debit_load's output has runs by server and shape.
        requests = data.get("requests") or sum(run["requests"] for runs in data["runs"].values() for run in runs)
    tiers = {
        "app": app_after.cpu_s - app_before.cpu_s,
        "postgresql": pg_cpu,
        "redis": redis_after.cpu_s - redis_before.cpu_s,
    }
    figures = {tier: round(1000 * cpu / requests, 3) for tier, cpu in tiers.items()}
    figures["total"] = round(sum(figures.values()), 3)
    result = {
        "requests": requests,
        "cpu_ms_per_request": figures,
        # Counted up to their last poll: a slightly low PostgreSQL figure if this is large.
        "postgresql_backends_ended": len(set(backends.last_cpu) - pg_live),
        "command_status": done.returncode,
    }
    print(json.dumps(result))
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
