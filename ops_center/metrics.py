"""Prometheus metrics: request latency per route and status, cache events per namespace,
database queries and ledger writes.

Under gunicorn every worker writes its samples to files in
PROMETHEUS_MULTIPROC_DIR (config/gunicorn.py sets it up) and ``/metrics`` adds
up the files of all workers, whichever worker answers the scrape. Without that
variable (runserver, tests) the process's own registry is served.

``/metrics`` is protected by settings: with METRICS_TOKEN set it needs
``Authorization: Bearer <token>``; without one it is open only when DEBUG=1
and answers 404 otherwise, so production never exposes it by default.
"""

import hmac
import os
import time

from django.conf import settings
from django.db import connection, transaction
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Our hot reads take about a millisecond; our p99 target is 500 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Requests no URL pattern matched share one label, so scanners cannot grow the series without bound.
UNMATCHED_ROUTE = "<unmatched>"

REQUEST_LATENCY = Histogram(
    "ops_center_http_request_duration_seconds",
    "Time to answer a request, by method, URL pattern and status.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
DB_QUERIES = Counter(
    "ops_center_db_queries", "Database queries run while answering requests, by URL pattern.", ["route"]
)
CACHE_EVENTS = Counter(
    "ops_center_cache_events", "Cache hits, misses, sets and deletes, by namespace.", ["namespace", "event"]
)
LEDGER_WRITES = Counter(
    "ops_center_ledger_writes", "Committed credit_transactions rows, by transaction type.", ["transaction_type"]
)

# Read replicas (ops_center/replicas.py): each replica's state as its last probe saw it, and where
# routed reads went and why (database="default" with a reason such as read_your_writes or
# no_replica_ready), so the share of reads moved off the primary can be read from outside.
REPLICA_UP = Gauge(
    "ops_center_replica_up",
    "1 while a read replica takes reads (reachable, within REPLICA_MAX_LAG_SECONDS), else 0.",
    ["replica"],
    multiprocess_mode="mostrecent",
)
REPLICA_LAG = Gauge(
    "ops_center_replica_lag_seconds",
    "Replay lag of a read replica at its last probe; -1 when unreachable or unknown.",
    ["replica"],
    multiprocess_mode="mostrecent",
)
ROUTED_READS = Counter(
    "ops_center_routed_reads",
    "Reads a replica may serve, by the database that served them and why.",
    ["database", "reason"],
)

_cache_event_counters: dict[tuple[str, str], Counter] = {}


def record_replica_state(replica: str, *, up: bool, lag_seconds: float | None) -> None:
    REPLICA_UP.labels(replica).set(1 if up else 0)
    REPLICA_LAG.labels(replica).set(-1 if lag_seconds is None else lag_seconds)


def record_routed_read(database: str, reason: str) -> None:
    ROUTED_READS.labels(database, reason).inc()


def record_cache_event(namespace: str, event: str, amount: int = 1) -> None:
    """Called by the cache's StatsRecorder on every operation, so it stays a dict lookup and an add."""
    child = _cache_event_counters.get((namespace, event))
    if child is None:
        child = _cache_event_counters.setdefault((namespace, event), CACHE_EVENTS.labels(namespace, event))
    child.inc(amount)


class _QueryCounter:
    """A connection.execute_wrapper that counts the statements of one request."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def observe_request(method: str | None, route: str, status: int, seconds: float) -> None:
    """One request into the latency histogram (this middleware, and ops_center.fast_wsgi's hits)."""
    REQUEST_LATENCY.labels(method if method in KNOWN_METHODS else "OTHER", route, str(status)).observe(seconds)


class MetricsMiddleware:
    """Times every request and counts its queries; first in MIDDLEWARE so the whole stack is timed."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        queries = _QueryCounter()
        started = time.perf_counter()
        with connection.execute_wrapper(queries):
            response = self.get_response(request)
        match = request.resolver_match
        route = match.route if match is not None else UNMATCHED_ROUTE
        observe_request(request.method, route, response.status_code, time.perf_counter() - started)
        if queries.count:
            DB_QUERIES.labels(route).inc(queries.count)
        return response


def record_ledger_write(transaction_type: str) -> None:
    """Count a ledger row once its transaction commits; a rolled-back write is not a write.

    Called by billing's one ledger writer. Bulk loads (seed_demo's COPY) are not counted.
    """
    transaction.on_commit(LEDGER_WRITES.labels(transaction_type).inc)


@require_GET
def metrics_view(request):
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "").encode()  # bytes: compare_digest refuses non-ASCII str
        if not hmac.compare_digest(sent, f"Bearer {token}".encode()):
            return HttpResponse(status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    elif not settings.DEBUG:
        raise Http404("metrics are off: set METRICS_TOKEN")
    from ops_center import replicas  # imports this module

    replicas.states(fresh=True)  # each replica's up and lag gauges, measured now
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def _registry():
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry
