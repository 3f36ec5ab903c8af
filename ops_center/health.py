"""Liveness and readiness probes for load balancers and orchestrators.

``/readyz`` checks PostgreSQL and Redis, each bounded by a short timeout from
settings: the database by its connect timeout (DB_CONNECT_TIMEOUT, 3 s; libpq
allows no less than 2), Redis by its socket timeouts (0.25 s) and the cache's
circuit breaker, which answers at once while Redis is known to be down. With
read replicas configured it also reports each one's state (ok, lagging, down,
not_in_recovery) and replay lag, bounded by REPLICA_CONNECT_TIMEOUT and the
replicas' breaker; a replica that is down or lagging makes the answer
"degraded" but ready, because the primary serves those reads. The probe is
public, so it names states and timings, never hosts or error text.
"""

import time

from django.db import connection
from django.http import JsonResponse

from ops_center import cache, replicas


def healthz(request):
    """The process is up and serving; touches no backing service."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """200 while the database answers; Redis or a replica down is "degraded" but ready: the primary serves."""
    checks = {"database": _check_database(), "cache": _check_cache()}
    if replicas.configured():
        checks["replicas"] = _check_replicas()
    if checks["database"]["status"] != "ok":
        status, http_status = "unavailable", 503
    elif any(check["status"] == "degraded" for check in checks.values()):
        status, http_status = "degraded", 200
    else:
        status, http_status = "ok", 200
    return JsonResponse({"status": status, "checks": checks}, status=http_status)


def _check_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means not ready; the class name says which kind
        return {"status": "down", "error": type(exc).__name__, "latency_ms": _since(started)}
    return {"status": "ok", "latency_ms": _since(started)}


def _check_cache() -> dict:
    started = time.perf_counter()
    # connected (Redis answered), local (the quick start's in-process cache) or degraded.
    status = cache.health_check()["status"]
    return {"status": status, "latency_ms": _since(started)}


def _check_replicas() -> dict:
    started = time.perf_counter()
    servers = [state.public() for state in replicas.states(fresh=True)]
    status = "ok" if all(server["status"] == "ok" for server in servers) else "degraded"
    return {"status": status, "latency_ms": _since(started), "servers": servers}


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
