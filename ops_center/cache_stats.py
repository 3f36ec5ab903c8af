"""The cache's circuit breaker and its cross-process hit/miss counters."""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache as django_cache
from redis import Redis

from ops_center import metrics

logger = logging.getLogger(__name__)

# Stored through the cache's make_key, so it carries the deployment's KEY_PREFIX
# (settings.CACHE_KEY_PREFIX) like every other key: deployments sharing a Redis
# database keep separate figures.
STATS_KEY = "cache-stats:v1"
FLUSH_INTERVAL_SECONDS = 1.0
EVENTS = ("hits", "misses", "sets", "deletes")


class CircuitBreaker:
    """Stops calling Redis for a cooldown after a failure.

    While open, calls return their fallback at once, so an outage costs one
    socket timeout per cooldown per process instead of one per cache call.
    ``attempts_while_failing`` counts the calls that actually reached for a
    failing Redis; tests read it to bound the cost of an outage.
    """

    def __init__(self) -> None:
        self._opened_at: float | None = None
        self._lock = threading.Lock()
        self.attempts_while_failing = 0
        self._recovery_steps: list[Callable[[], None]] = []

    def before_recovery(self, step: Callable[[], None]) -> None:
        """Run ``step`` first when Redis is reachable again, before any other call.

        The cache uses it to replay evictions that failed during the outage, so
        a value cached before the outage is never served after a newer write.
        """
        self._recovery_steps.append(step)

    @property
    def cooldown(self) -> float:
        return float(getattr(settings, "CACHE_BREAKER_COOLDOWN", 5.0))

    @property
    def is_open(self) -> bool:
        opened_at = self._opened_at
        return opened_at is not None and time.monotonic() - opened_at < self.cooldown

    def call(self, operation: Callable[[], Any], *, fallback: Any) -> Any:
        if self.is_open:
            return fallback
        try:
            if self._opened_at is not None:
                for step in self._recovery_steps:
                    step()
            result = operation()
        except Exception as exc:
            self.record_failure()
            logger.warning("cache unavailable (%s); serving from the database", type(exc).__name__)
            return fallback
        if self._opened_at is not None:
            with self._lock:
                self._opened_at = None
            logger.info("cache is back; caching resumed")
        return result

    def record_failure(self) -> None:
        with self._lock:
            self.attempts_while_failing += 1
            self._opened_at = time.monotonic()

    def reset(self) -> None:
        with self._lock:
            self._opened_at = None
            self.attempts_while_failing = 0


class StatsRecorder:
    """Counts per namespace in process, flushed to one Redis hash about once a second.

    The flush rides on a cache call that is happening anyway and costs one
    pipelined round trip per second per process, not one per operation. With
    the in-memory quick-start cache there is one process, so the local counts
    are the whole truth.
    """

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._pending: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def record(self, namespace: str, event: str, amount: int = 1) -> None:
        metrics.record_cache_event(namespace, event, amount)  # Prometheus, per namespace, in shared memory files
        with self._lock:
            self._pending[(namespace, event)] += amount
            due = time.monotonic() - self._last_flush >= FLUSH_INTERVAL_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        if not _shared():
            return  # one process: the local counts are the whole truth
        with self._lock:
            pending, self._pending = self._pending, Counter()
            self._last_flush = time.monotonic()
        if not pending:
            return

        def write() -> bool:
            pipe = _redis(write=True).pipeline(transaction=False)
            key = stats_hash()
            for (namespace, event), amount in pending.items():
                pipe.hincrby(key, f"{namespace}:{event}", amount)
            pipe.execute()
            return True

        if not self._breaker.call(write, fallback=False):
            self._merge_back(pending)  # kept for the next flush

    def _merge_back(self, pending: Counter[tuple[str, str]]) -> None:
        with self._lock:
            self._pending.update(pending)

    def snapshot(self) -> dict[str, Any]:
        """Totals per namespace and overall, with hit_rate as a percentage."""
        self.flush()
        if _shared():
            raw = self._breaker.call(lambda: _redis(write=False).hgetall(stats_hash()), fallback={})
            counts = Counter({_decode(field): int(value) for field, value in raw.items()})
        else:
            with self._lock:
                counts = Counter(
                    {f"{namespace}:{event}": amount for (namespace, event), amount in self._pending.items()}
                )
        per_namespace: dict[str, dict[str, float]] = {}
        for field, amount in counts.items():
            namespace, event = field.rsplit(":", 1)
            per_namespace.setdefault(namespace, dict.fromkeys(EVENTS, 0))[event] = amount
        total = {event: sum(ns[event] for ns in per_namespace.values()) for event in EVENTS}
        for numbers in (*per_namespace.values(), total):
            lookups = numbers["hits"] + numbers["misses"]
            numbers["hit_rate"] = round(100 * numbers["hits"] / lookups, 2) if lookups else 0.0
        return {"total": total, "namespaces": dict(sorted(per_namespace.items()))}

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()
        if _shared():
            self._breaker.call(lambda: _redis(write=True).delete(stats_hash()), fallback=None)


def _shared() -> bool:
    """True when the cache is Redis, shared by every worker process."""
    return hasattr(django_cache, "client")


def stats_hash() -> str:
    """The Redis key of the shared counters, e.g. ``ops_center:1:cache-stats:v1``."""
    return django_cache.make_key(STATS_KEY)


def _redis(*, write: bool) -> Redis:
    """django-redis's client, for the hash commands the cache API lacks; only when ``_shared()``."""
    if not hasattr(django_cache, "client"):
        raise RuntimeError("the cache is not django-redis")
    return django_cache.client.get_client(write=write)


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
