"""gunicorn settings, each overridable from the environment.

gunicorn -c config/gunicorn.py config.wsgi
"""

import glob
import multiprocessing
import os
import shutil
import tempfile

bind = os.environ.get("BIND", "127.0.0.1:8000")

# Requests are short and mostly wait on Redis or PostgreSQL, so two threads
# per process overlap that waiting, and cores + 1 processes use every core
# despite the GIL. Not gunicorn's 2 x cores + 1: on 2 cores shared with
# PostgreSQL and Redis, 3 processes served 1.13-1.15 x the debits of 5 across
# many accounts, and the mixed profile at 500 req/s with the same p99 for
# 0.96 x the CPU per request. More threads than two added nothing but
# contention for each process's interpreter lock (docs/performance.md).
# Without REDIS_URL the cache lives inside the process, so one process must
# serve everything: several would each keep their own cache, and an eviction
# in one would leave the others stale.
_shared_cache = bool(os.environ.get("REDIS_URL"))
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1 if _shared_cache else 1))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 2 if _shared_cache else 8))

# A hung request is killed rather than left holding a database connection.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 20
# Keep-alive lets load generators and proxies reuse connections.
keepalive = 5
# Recycle workers now and then so a slow leak can never grow without bound;
# jitter keeps them from restarting all at once. Not often: a new worker imports
# Django and the project again (about 1 s of CPU), which every 20,000 requests
# was 3 % of the server's CPU under load (docs/performance.md).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 100_000))
max_requests_jitter = max_requests // 10

# Empty turns the access log off (benchmarks, tests).
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")


def when_ready(server):
    """With WARM_CACHE_ON_START=1, fill the cache in the background once workers can serve."""
    if os.environ.get("WARM_CACHE_ON_START") == "1":
        import subprocess
        import sys

        server.log.info("warming the cache in the background")
        subprocess.Popen([sys.executable, "manage.py", "warm_cache", "--verbosity", "0"])  # noqa: S603


def post_worker_init(worker):
    """Each worker replays the evictions that could not reach Redis (ops_center/cache_backlog.py).

    Every worker, not one: a write made during a Redis stall is recorded in
    PostgreSQL, and whichever worker sees Redis answer first evicts the old
    value for all of them. CACHE_EVICTION_REPLAY_INTERVAL=0 turns it off.
    """
    from ops_center.cache_backlog import start_replayer

    start_replayer()


def worker_exit(server, worker):
    """Stop the replay thread; it closes its own database connection."""
    try:
        from ops_center.cache_backlog import stop_replayer
    except Exception:  # a worker that failed to boot has nothing to stop
        return
    stop_replayer()


# Prometheus multiprocess mode (ops_center/metrics.py): every worker writes its
# samples to files in this directory and /metrics adds them all up, so each
# worker is counted. It must be in the environment before the workers fork and
# import prometheus_client; without one, a private directory is made and removed
# on exit.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ops-center-metrics-")
    os.environ["OPS_CENTER_OWNS_METRICS_DIR"] = "1"
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def on_starting(server):
    """Start counting from zero: files of an earlier run (maybe with reused pids) would be added in."""
    for stale in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(stale)


def child_exit(server, worker):
    """A dead worker's counters stay in the sums; its live gauges must go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if os.environ.get("OPS_CENTER_OWNS_METRICS_DIR") == "1":
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
