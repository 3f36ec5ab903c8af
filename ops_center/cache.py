"""Namespaced cache-aside on top of Django's cache (django-redis in production).

Keys look like ``v1:credit_balance:user:42``: the namespace isolates kinds of
data, the version lets a deploy retire old shapes at once. TTLs come from the
performance report and can be overridden with ``settings.CACHE_TTLS``.

A cache outage must never fail a request: every call here treats a Redis error
as a miss (reads) or a no-op (writes), and the caller falls back to the database.
"""

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache as django_cache
from django.db import transaction

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
_MISSING = object()


def ttl_for(namespace: str) -> int:
    overrides = getattr(settings, "CACHE_TTLS", {})
    if namespace not in DEFAULT_TTLS and namespace not in overrides:
        raise KeyError(f"unknown cache namespace {namespace!r}")
    return int(overrides.get(namespace, DEFAULT_TTLS.get(namespace)))


def make_key(namespace: str, *parts: Any) -> str:
    ttl_for(namespace)  # refuse unknown namespaces early
    return ":".join([KEY_VERSION, namespace, *(str(part) for part in parts)])


def get(namespace: str, *parts: Any, default: Any = None) -> Any:
    try:
        return django_cache.get(make_key(namespace, *parts), default)
    except Exception:
        logger.warning("cache get failed; serving from the database", exc_info=True)
        return default


def set(namespace: str, *parts: Any, value: Any, ttl: int | None = None) -> None:
    try:
        django_cache.set(make_key(namespace, *parts), value, ttl if ttl is not None else ttl_for(namespace))
    except Exception:
        logger.warning("cache set failed", exc_info=True)


def delete_keys(keys: Iterable[str]) -> None:
    keys = list(keys)
    if not keys:
        return
    try:
        django_cache.delete_many(keys)
    except Exception:
        # A missed eviction can serve a stale value for at most one TTL; log it loudly.
        logger.error("cache delete failed for %s", keys, exc_info=True)


def get_or_set(namespace: str, *parts: Any, compute: Callable[[], Any], ttl: int | None = None) -> tuple[Any, bool]:
    """Cache-aside read. Returns (value, hit). A cached None or empty value is a hit."""
    value = get(namespace, *parts, default=_MISSING)
    if value is not _MISSING:
        return value, True
    value = compute()
    set(namespace, *parts, value=value, ttl=ttl)
    return value, False


def cached(namespace: str, ttl: int | None = None):
    """Decorator: cache a function's result under a key built from its arguments."""

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            parts = [func.__name__, *args, *(f"{name}={kwargs[name]}" for name in sorted(kwargs))]
            value, _ = get_or_set(namespace, *parts, compute=lambda: func(*args, **kwargs), ttl=ttl)
            return value

        return wrapper

    return decorate


def invalidate_on_commit(*keys: str) -> None:
    """Evict after the surrounding transaction commits; a rollback evicts nothing."""
    transaction.on_commit(lambda: delete_keys(keys))
