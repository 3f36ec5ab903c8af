"""Deployments sharing one Redis database: every key carries CACHE_KEY_PREFIX, so neither sees the other."""

import os

import pytest
from django.core.cache import cache as django_cache
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from config.settings import _cache_key_prefix, redis_cache
from ops_center import cache
from ops_center.api.throttling import _count

PREFIXES = ("deploy-a", "deploy-b")


def deployment(prefix: str):
    """This process as one deployment: the suite's Redis database, under ``prefix``."""
    return override_settings(CACHES={"default": redis_cache(os.environ["TEST_REDIS_URL"], key_prefix=prefix)})


@pytest.fixture(autouse=True)
def _clean():
    cache.breaker.reset()
    for prefix in PREFIXES:
        with deployment(prefix):
            cache.stats.reset()
    yield
    for prefix in PREFIXES:
        with deployment(prefix):
            cache.stats.reset()


def test_a_value_set_by_one_deployment_is_a_miss_for_the_other():
    with deployment("deploy-a"):
        cache.set_value("analytics", "platform", value={"revenue": "A"})
    with deployment("deploy-b"):
        assert cache.get_value("analytics", "platform") is None
        assert cache.get_or_set("analytics", "platform", compute=lambda: {"revenue": "B"}) == ({"revenue": "B"}, False)
    with deployment("deploy-a"):
        assert cache.get_or_set("analytics", "platform", compute=lambda: {"revenue": "?"}) == ({"revenue": "A"}, True)


def test_invalidation_by_one_deployment_leaves_the_other_alone():
    for prefix in PREFIXES:
        with deployment(prefix):
            cache.set_value("credit_balance", cache.user_part(7), "balance", value=prefix)
            cache.set_value("credit_balance", cache.user_part(8), "balance", value=prefix)

    with deployment("deploy-b"):
        cache.invalidate_user_cache(7)
        assert cache.delete_pattern("credit_balance:user_*") == 1  # only its own user 8
        assert cache.get_value("credit_balance", cache.user_part(8), "balance") is None

    with deployment("deploy-a"):
        assert cache.get_value("credit_balance", cache.user_part(7), "balance") == "deploy-a"
        assert cache.get_value("credit_balance", cache.user_part(8), "balance") == "deploy-a"


def test_stats_are_counted_per_deployment():
    with deployment("deploy-a"):
        cache.set_value("analytics", "platform", value=1)
        cache.get_value("analytics", "platform")
        cache.get_value("analytics", "platform")
        cache.stats.flush()
    with deployment("deploy-b"):
        cache.get_value("analytics", "platform")
        b = cache.get_stats()
    with deployment("deploy-a"):
        a = cache.get_stats()

    assert (a["namespaces"]["analytics"]["hits"], a["namespaces"]["analytics"]["misses"]) == (2, 0)
    assert (b["namespaces"]["analytics"]["hits"], b["namespaces"]["analytics"]["misses"]) == (0, 1)


def test_every_key_in_redis_carries_its_deployment_s_prefix():
    for prefix in PREFIXES:
        with deployment(prefix):
            cache.get_or_set("credit_balance", cache.user_part(1), "balance", compute=dict)  # value and lock
            _count("throttle:writes:1:100", "throttle:writes:1:99", 60)
            cache.stats.flush()
            cache.get_stats()

    raw = django_cache.client.get_client(write=False)
    keys = sorted(key.decode() for key in raw.scan_iter(count=1000))
    assert keys, "nothing was written"
    assert all(key.startswith(("deploy-a:", "deploy-b:")) for key in keys), keys
    for prefix in PREFIXES:
        assert f"{prefix}:1:cache-stats:v1" in keys
        assert f"{prefix}:1:throttle:writes:1:100" in keys
        assert f"{prefix}:1:v1:credit_balance:user_1:balance" in keys


def test_the_default_prefix_is_the_database_name_and_an_explicit_one_is_checked(monkeypatch):
    monkeypatch.delenv("CACHE_KEY_PREFIX", raising=False)
    assert _cache_key_prefix("ops_center") == "ops_center"
    assert _cache_key_prefix("/srv/app/var/db.sqlite3") == "db.sqlite3"
    assert _cache_key_prefix("billing prod:eu*") == "billing_prod_eu"

    monkeypatch.setenv("CACHE_KEY_PREFIX", "staging")
    assert _cache_key_prefix("ops_center") == "staging"
    monkeypatch.setenv("CACHE_KEY_PREFIX", "staging:*")
    with pytest.raises(ImproperlyConfigured):
        _cache_key_prefix("ops_center")
