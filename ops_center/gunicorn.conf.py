"""gunicorn settings, each overridable from the environment.

gunicorn -c ops_center/gunicorn.conf.py ops_center.wsgi
"""

import multiprocessing
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")

# Requests are short and mostly wait on Redis or PostgreSQL, so a few threads
# per process overlap that waiting; processes (2 x cores + 1, gunicorn's own
# rule of thumb) use every core despite the GIL. Without REDIS_URL the cache
# lives inside the process, so one process must serve everything: several
# would each keep their own cache, and an eviction in one would leave the
# others stale.
_shared_cache = bool(os.environ.get("REDIS_URL"))
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1 if _shared_cache else 1))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 4 if _shared_cache else 8))

# A hung request is killed rather than left holding a database connection.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 20
# Keep-alive lets load generators and proxies reuse connections.
keepalive = 5
# Recycle workers now and then so a slow leak can never grow without bound;
# jitter keeps them from restarting all at once.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 20000))
max_requests_jitter = 2000

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
