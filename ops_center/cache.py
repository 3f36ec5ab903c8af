"""Namespaced cache-aside on Django's cache (django-redis with hiredis in production).

Keys look like ``v1:credit_balance:user_42``, and in Redis carry the
deployment's ``CACHE_KEY_PREFIX`` before that (django-redis's KEY_PREFIX), so
deployments sharing a Redis database never see each other's entries. The namespace isolates a kind of
data and sets its TTL (from a minute for balances to half an hour for pricing
rules, by how often each changes; overridable in ``settings.CACHE_TTLS``); the
version prefix lets a deploy retire old shapes.

Four promises:

* **A cache outage never fails a request.** Every call goes through a circuit
  breaker: a Redis error opens it for ``CACHE_BREAKER_COOLDOWN`` seconds, during
  which calls are misses and no-ops without touching the network, so an outage
  costs one short timeout, not one per call. Afterwards one call probes, and
  caching resumes by itself.
* **No stampede.** A value is stored with a soft expiry (its TTL) inside a
  longer hard TTL. When the soft expiry passes, one process takes a short lock
  and recomputes while the others keep serving the previous value; on a cold
  miss the others wait briefly for the winner instead of all querying.
* **No stale read after an outage.** An eviction that cannot reach Redis (an
  error, a timeout, an open breaker) is written to PostgreSQL
  (``PendingEviction``) and replayed by a thread in every gunicorn worker, so
  once a write has answered, no worker serves the value it replaced later than
  about ``CACHE_EVICTION_REPLAY_INTERVAL`` after Redis answers again. Nothing
  of this runs on a cache hit.
* **Counted without extra round trips.** Hits, misses, sets and deletes are
  counted in-process and flushed to one Redis hash at most once a second, so
  ``stats.snapshot()`` adds up every gunicorn worker.
"""

import fnmatch
import functools
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ParamSpec, TypedDict, TypeVar

from django.conf import settings
from django.core.cache import cache as django_cache
from django.db import connection, transaction

from ops_center import cache_generations as generations
from ops_center.cache_backlog import backlog
from ops_center.cache_generations import (
    LOCK_SECONDS,
    Computed,
    generation_in,
    generation_key,
    lock_key,
    refilled_marker,
)
from ops_center.cache_stats import CircuitBreaker, StatsRecorder, _shared

logger = logging.getLogger(__name__)

DEFAULT_TTLS = {
    "credit_balance": 60,
    "subscription": 300,
    "pricing_rules": 1800,
    "user_tier": 300,
    "org_data": 600,
    "analytics": 120,
}
KEY_VERSION = "v1"
# How long a stale value may still be served while one process recomputes it.
STALE_GRACE_SECONDS = 30
COLD_MISS_WAIT_SECONDS = 0.5

breaker = CircuitBreaker()
stats = StatsRecorder(breaker)
_MISSING = object()
P = ParamSpec("P")
R = TypeVar("R")


def ttl_for(namespace: str) -> int:
    overrides = getattr(settings, "CACHE_TTLS", {})
    if namespace not in DEFAULT_TTLS and namespace not in overrides:
        raise KeyError(f"unknown cache namespace {namespace!r}")
    return int(overrides[namespace]) if namespace in overrides else DEFAULT_TTLS[namespace]


def make_key(namespace: str, *parts: Any) -> str:
    if namespace not in DEFAULT_TTLS:  # on every key of every request: no settings lookup for the usual ones
        ttl_for(namespace)  # refuse unknown namespaces early (CACHE_TTLS may add its own)
    return ":".join([KEY_VERSION, namespace, *(str(part) for part in parts)])


def user_part(user_id: int) -> str:
    return f"user_{user_id}"


def org_part(org_id: int) -> str:
    return f"org_{org_id}"


def _namespace_of(key: str) -> str:
    return key.split(":", 2)[1]


def get_value(namespace: str, *parts: Any, default: Any = None) -> Any:
    """Plain cache-aside read; a stale entry still counts as present."""
    key = make_key(namespace, *parts)
    entry = breaker.call(lambda: django_cache.get(key, _MISSING), fallback=_MISSING)
    if entry is _MISSING:
        stats.record(namespace, "misses")
        return default
    stats.record(namespace, "hits")
    return entry[1]


def get_entries(wanted: Iterable[tuple]) -> list[tuple[float, Any]] | None:
    """Several keys in one round trip (MGET), as ``(soft_expiry, value)`` entries in the order asked.

    None when any key is missing or Redis does not answer. Counts nothing: the
    caller counts what it serves (``record_hits``).
    """
    wanted = list(wanted)
    return entries_in(fetch(wanted), wanted)


def fetch(specs: Iterable[tuple]) -> Mapping[str, Any] | None:
    """Keys and their refill markers in one round trip (MGET): what was found, by key; None when Redis
    does not answer. Hand it to ``entries_in``, and to ``reading_ahead`` for the keys a later
    ``get_or_set`` will want."""
    keys = [make_key(*spec) for spec in specs]
    return breaker.call(lambda: django_cache.get_many(keys + [refilled_marker(key) for key in keys]), fallback=None)


def entries_in(found: Mapping[str, Any] | None, wanted: Iterable[tuple]) -> list[tuple[float, Any]] | None:
    """``wanted``'s entries from what ``fetch`` found, in order; None when any is missing."""
    keys = [make_key(*spec) for spec in wanted]
    if not found or any(key not in found for key in keys):
        return None
    _note_read([marker for key in keys if (marker := refilled_marker(key)) in found])
    return [found[key] for key in keys]


# What a ``fetch`` found, offered to this request's ``get_or_set`` calls instead of a round trip of their own.
_read_ahead: ContextVar[Mapping[str, Any]] = ContextVar("cache_read_ahead", default=MappingProxyType({}))


@contextmanager
def reading_ahead(found: Mapping[str, Any]) -> Iterator[None]:
    """Inside, ``get_or_set`` of a key that ``found`` holds takes it from there (a fast write's pricing
    rule, fetched with the caller's principal). A key ``found`` lacks is read from Redis as usual."""
    token = _read_ahead.set(found)
    try:
        yield
    finally:
        _read_ahead.reset(token)


def _note_read(markers: list[str]) -> None:
    """The first read of a refilled value: it is in use, so the next write refills it again."""
    if markers:
        breaker.call(lambda: django_cache.delete_many(markers), fallback=None)


def record_hits(namespaces: Iterable[str]) -> None:
    for namespace in namespaces:
        stats.record(namespace, "hits")


def set_value(namespace: str, *parts: Any, value: Any, ttl: int | None = None) -> None:
    _store(make_key(namespace, *parts), value, ttl if ttl is not None else ttl_for(namespace))


def _store(key: str, value: Any, ttl: int) -> None:
    entry = (time.time() + ttl, value)
    breaker.call(lambda: django_cache.set(key, entry, ttl + STALE_GRACE_SECONDS), fallback=None)
    stats.record(_namespace_of(key), "sets")


def get_or_set(namespace: str, *parts: Any, compute: Callable[[], Any], ttl: int | None = None) -> tuple[Any, bool]:
    """Cache-aside with stampede control. Returns (value, hit); a cached None is a hit."""
    key = make_key(namespace, *parts)
    ttl = ttl if ttl is not None else ttl_for(namespace)
    marker = refilled_marker(key)
    found = _read_ahead.get()
    generation = None  # unknown for an entry a fast path read ahead: read only if this request recomputes
    if key not in found:
        found = breaker.call(lambda: django_cache.get_many([key, marker, generation_key(key)]), fallback={})
        generation = generation_in(found, key)
    entry = found.get(key, _MISSING)
    if marker in found:
        _note_read([marker])
    if entry is not _MISSING:
        soft_expiry, value = entry
        if soft_expiry > time.time() or not _take_lock(key):
            # Fresh, or stale while another process is already recomputing it.
            stats.record(namespace, "hits")
            return value, True
        return _recompute(key, namespace, compute, ttl, generation), False

    if breaker.is_open or _take_lock(key):
        return _recompute(key, namespace, compute, ttl, generation), False
    entry = _wait_for_winner(key)
    if entry is not _MISSING:
        stats.record(namespace, "hits")
        return entry[1], True
    return _recompute(key, namespace, compute, ttl, generation), False


def _recompute(key: str, namespace: str, compute: Callable[[], Any], ttl: int, generation: str | None) -> Any:
    """Compute the value and store it, unless a write evicted the key since ``generation`` was read
    (``cache_generations``; None: read it now): the value may predate that write, and the next read
    recomputes it."""
    stats.record(namespace, "misses")
    if generation is None:
        generation = breaker.call(lambda: generations.read_generation(key), fallback="")
    try:
        value = compute()
        computed = _computed(key, value, ttl, generation)
        if breaker.call(lambda: generations.store_if_current([computed]), fallback=None) is not None:
            stats.record(namespace, "sets")
        return value
    finally:
        breaker.call(lambda: django_cache.delete(lock_key(key)), fallback=None)


def _computed(key: str, value: Any, ttl: int, generation: str, *, refilled: bool = False) -> Computed:
    """A value as it is stored: with its soft expiry inside a hard TTL ``STALE_GRACE_SECONDS`` longer."""
    return Computed(
        key=key,
        entry=(time.time() + ttl, value),
        timeout=ttl + STALE_GRACE_SECONDS,
        generation=generation,
        refilled=refilled,
    )


def _take_lock(key: str) -> bool:
    # On an open breaker, everyone computes: there is no shared place to coordinate.
    return bool(breaker.call(lambda: django_cache.add(lock_key(key), 1, LOCK_SECONDS), fallback=True))


def _wait_for_winner(key: str) -> Any:
    """The entry another process stored meanwhile, or ``_MISSING``."""
    deadline = time.monotonic() + COLD_MISS_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.01)
        entry = breaker.call(lambda: django_cache.get(key, _MISSING), fallback=_MISSING)
        if entry is not _MISSING:
            return entry
    return _MISSING


def cached(namespace: str, ttl: int | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: cache a function's result under a key built from its arguments."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            parts = [func.__qualname__, *args, *(f"{name}={kwargs[name]}" for name in sorted(kwargs))]
            value, _ = get_or_set(namespace, *parts, compute=lambda: func(*args, **kwargs), ttl=ttl)
            return value

        return wrapper

    return decorate


def delete_keys(keys: Iterable[str], *, recorded: bool = False) -> None:
    """Evict now. A failed eviction goes to the durable backlog (unless ``recorded``: its row exists)."""
    keys = list(keys)
    if not keys:
        return

    def delete() -> bool:
        django_cache.delete_many(keys)
        return True

    if not breaker.call(delete, fallback=False) and not recorded and _shared():
        backlog.record(keys)
    for key in keys:
        stats.record(_namespace_of(key), "deletes")


def _replay_before_recovery() -> None:
    # Inside a transaction a failed query would break the caller's; the replay thread covers those rows.
    backlog.replay(use_database=not connection.in_atomic_block)


breaker.before_recovery(_replay_before_recovery)


def delete_pattern(pattern: str) -> int:
    """Delete every key matching ``pattern`` (e.g. ``credit_balance:user_*``), with SCAN, never KEYS."""
    full_pattern = f"{KEY_VERSION}:{pattern}"

    def scan_and_delete() -> int:
        if hasattr(django_cache, "delete_pattern"):
            return django_cache.delete_pattern(full_pattern, itersize=500)
        # The in-memory quick-start cache (LocMemCache): match its keys in process.
        if not hasattr(django_cache, "_cache"):
            raise TypeError("delete_pattern needs django-redis or the in-process cache")
        matching = [key for key in list(django_cache._cache) if fnmatch.fnmatch(key.split(":", 2)[-1], full_pattern)]
        for key in matching:
            django_cache.delete(key.split(":", 2)[-1])
        return len(matching)

    deleted = breaker.call(scan_and_delete, fallback=0)
    stats.record(pattern.split(":", 1)[0] if ":" in pattern else "all", "deletes", deleted)
    return deleted


# The keyword by which a subject's key and compute selectors take its id.
_SUBJECT_ID_ARGUMENT = {"user": "user_id", "org": "org_id"}


@dataclass(frozen=True)
class CachedView:
    """One cached view of a user's or an org's data: its key and how to recompute it from the database.

    Both are keyword-only selectors, called with the subject's id (``user_id=`` or ``org_id=``).
    """

    subject: str
    key: Callable[..., tuple]
    compute: Callable[..., Any]
    changed_by: frozenset[str]

    def cache_key(self, subject_id: int) -> str:
        return make_key(*self.key(**{_SUBJECT_ID_ARGUMENT[self.subject]: subject_id}))

    def refiller(self, subject_id: int) -> Callable[[], Any]:
        return functools.partial(self.compute, **{_SUBJECT_ID_ARGUMENT[self.subject]: subject_id})


# Registered by the apps that own the views (billing's AppConfig.ready), so this module names none of them.
_cached_views: dict[str, list[CachedView]] = {"user": [], "org": []}


def register_view(
    subject: str, *, key: Callable[..., tuple], compute: Callable[..., Any], changed_by: Iterable[str]
) -> None:
    """Declare a cached view of one user's (``subject="user"``) or one org's data.

    ``key`` and ``compute`` take the subject's id by keyword: ``user_id=`` or
    ``org_id=``. ``changed_by`` names the kinds of write that change the view
    (say, a ledger row): a write that says what it changed
    (``invalidate_on_commit(changed=...)``) evicts only the views it can have
    changed, and any other write to the subject evicts all of them. Either way
    the eviction runs after commit, and where the view was cached and read the
    writer puts the recomputed value back (``refill``), so the next read hits.
    """
    views = _cached_views[subject]
    if all(view.key != key for view in views):
        views.append(CachedView(subject=subject, key=key, compute=compute, changed_by=frozenset(changed_by)))


def warm(subject: str, subject_id: int) -> None:
    """Recompute and store every registered view of one user or org."""
    _store_many({view.cache_key(subject_id): view.refiller(subject_id)() for view in _cached_views[subject]})


def registered_views(subject: str) -> list[CachedView]:
    """The cached views of a ``"user"`` or an ``"org"``, as registered."""
    return list(_cached_views[subject])


def user_keys(user_id: int) -> list[str]:
    """Every key that holds one user's credit data."""
    return [view.cache_key(user_id) for view in _cached_views["user"]]


def org_keys(org_id: int) -> list[str]:
    """Every key that holds one org's billing data."""
    return [view.cache_key(org_id) for view in _cached_views["org"]]


def invalidate_user_cache(user_id: int) -> None:
    delete_keys(user_keys(user_id))


def invalidate_org_cache(org_id: int) -> None:
    delete_keys(org_keys(org_id))


def _refillers(
    *, user_ids: Iterable[int], org_ids: Iterable[int], changed: Collection[str] | None
) -> dict[str, Callable[[], Any]]:
    """The key of each registered view that ``changed`` can have changed (all of them when None), with
    the call that recomputes it."""
    found = {}
    for subject, ids in (("user", user_ids), ("org", org_ids)):
        views = [view for view in _cached_views[subject] if changed is None or not view.changed_by.isdisjoint(changed)]
        for subject_id in ids:
            for view in views:
                found[view.cache_key(subject_id)] = view.refiller(subject_id)
    return found


def evict_and_refill(keys: list[str], refillers: Mapping[str, Callable[[], Any]], *, recorded: bool = False) -> None:
    """Evict ``keys`` now, in one command; then recompute, from the primary, those of them in use, and store
    each unless another write evicted it meanwhile (``cache_generations``).

    A value is in use unless a writer refilled it and nobody has read it since:
    a refill stores a marker beside the value (``refilled_marker``), and the
    value's first read deletes it. So a view someone reads is refilled after
    every write to it, and one nobody reads (a metering client's balance,
    rewritten by every debit) is refilled once and then only deleted. A failed
    eviction goes to the durable backlog and nothing is refilled; a failed
    recomputation leaves the key evicted, which is always correct.
    """
    if not keys:
        return
    in_use = breaker.call(lambda: generations.evict(keys, refillers), fallback=None)
    for key in keys:
        stats.record(_namespace_of(key), "deletes")
    if in_use is None:
        if not recorded and _shared():
            backlog.record(keys)
        return
    if not in_use:
        return
    from ops_center import replicas  # imports this module

    try:
        with replicas.primary_only():
            fresh = {key: refillers[key]() for key in in_use}
    except Exception as exc:
        logger.warning("could not refill %d cache keys after a write (%s)", len(in_use), type(exc).__name__)
        return
    computed = [
        _computed(key, value, ttl_for(_namespace_of(key)), in_use[key], refilled=True) for key, value in fresh.items()
    ]
    if breaker.call(lambda: generations.store_if_current(computed), fallback=None) is not None:
        for key in fresh:
            stats.record(_namespace_of(key), "sets")


def _store_many(values: Mapping[str, Any]) -> None:
    """Store several values, each under its namespace's TTL, in one round trip per distinct TTL."""
    now = time.time()
    by_timeout: dict[int, dict[str, Any]] = {}
    for key, value in values.items():
        ttl = ttl_for(_namespace_of(key))
        by_timeout.setdefault(ttl + STALE_GRACE_SECONDS, {})[key] = (now + ttl, value)
    for timeout, group in by_timeout.items():
        breaker.call(functools.partial(django_cache.set_many, group, timeout), fallback=None)
    for key in values:
        stats.record(_namespace_of(key), "sets")


def invalidate_on_commit(
    *,
    user_ids: Iterable[int] = (),
    org_ids: Iterable[int] = (),
    keys: Iterable[str] = (),
    changed: Collection[str] | None = None,
    durable: bool = False,
) -> None:
    """Evict after the surrounding transaction commits: a rollback evicts nothing,
    and the next read after a commit sees the new value (read-your-writes).

    Of the users' and orgs' views, ``changed`` (kinds of write, as views name
    them in ``register_view``) evicts only those it can have changed; None
    evicts every one.

    ``durable`` (revocations, deactivations) also writes the keys to the eviction
    backlog inside the transaction: they commit together, and the replay threads
    evict them again within two rounds, even if the process dies before its own
    eviction or a concurrent reader re-cached the old value in between.
    """
    refillers = _refillers(user_ids=user_ids, org_ids=org_ids, changed=changed)
    doomed = [*keys, *refillers]
    if not doomed:
        return
    recorded = durable and _shared()
    if recorded:
        backlog.record_in_transaction(doomed)
    # One eviction (and refill) per key per commit, however many rows of the transaction asked for it.
    pending = _pending_evictions()
    for key in doomed:
        (pending["recorded"] if recorded else pending["unrecorded"])[key] = None
    pending["refillers"].update(refillers)
    transaction.on_commit(_evict_pending)


_pending = threading.local()


class _PendingEvictions(TypedDict):
    """One thread's evictions awaiting its commit: keys as ordered sets (dicts), and the refill calls."""

    recorded: dict[str, None]
    unrecorded: dict[str, None]
    refillers: dict[str, Callable[[], Any]]


def _pending_evictions() -> _PendingEvictions:
    if getattr(_pending, "evictions", None) is None:
        _pending.evictions = {"recorded": {}, "unrecorded": {}, "refillers": {}}
    return _pending.evictions


def _evict_pending() -> None:
    """Every callback of one commit runs this; the first takes the whole batch, the others find it empty.

    A rolled-back transaction's keys stay pending until the thread's next
    commit, which evicts them once more than needed: harmless.
    """
    pending, _pending.evictions = getattr(_pending, "evictions", None), None
    if pending is None:
        return
    recorded = [key for key in pending["recorded"]]
    unrecorded = [key for key in pending["unrecorded"] if key not in pending["recorded"]]
    evict_and_refill(recorded, pending["refillers"], recorded=True)
    evict_and_refill(unrecorded, pending["refillers"])


def health_check() -> dict:
    """Redis status from INFO; "degraded" while the breaker is open or Redis is unreachable."""
    if not hasattr(django_cache, "client"):
        return {"status": "local", "healthy": True, "backend": "in-process memory cache"}
    if breaker.is_open:
        return {"status": "degraded", "healthy": False, "detail": "circuit open; serving from the database"}
    try:
        info = django_cache.client.get_client(write=False).info()
    except Exception as exc:
        breaker.record_failure()
        return {"status": "degraded", "healthy": False, "detail": f"{type(exc).__name__}: Redis unreachable"}
    return {
        "status": "connected",
        "healthy": True,
        "keyspace_hits": info.get("keyspace_hits"),
        "keyspace_misses": info.get("keyspace_misses"),
        "used_memory_human": info.get("used_memory_human"),
        "connected_clients": info.get("connected_clients"),
        "redis_version": info.get("redis_version"),
    }


def get_stats() -> dict:
    return stats.snapshot()
