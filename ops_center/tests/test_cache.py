"""The cache module on real Redis: TTLs, namespaces, patterns, stampedes and cross-process stats."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.cache import cache as django_cache

from ops_center import cache
from ops_center.tests.threads import run_in_threads

PROJECT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.breaker.reset()
    cache.stats.reset()
    yield
    cache.stats.reset()


def redis_command_calls(command: str) -> int:
    info = django_cache.client.get_client(write=False).info("commandstats")
    return int(info.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_a_cached_none_or_empty_value_is_a_hit():
    calls = []

    def load():
        calls.append(1)
        return None

    assert cache.get_or_set("analytics", "nothing", compute=load) == (None, False)
    assert cache.get_or_set("analytics", "nothing", compute=load) == (None, True)
    assert cache.get_or_set("analytics", "empty", compute=list) == ([], False)
    assert cache.get_or_set("analytics", "empty", compute=list) == ([], True)
    assert len(calls) == 1


def test_cached_decorator_keys_on_arguments():
    calls = []

    @cache.cached("org_data")
    def double(number, *, label=""):
        calls.append(number)
        return number * 2

    assert [double(2), double(2), double(3), double(2, label="x")] == [4, 4, 6, 4]
    assert calls == [2, 3, 2]


def test_namespaces_are_isolated_and_unknown_ones_refused():
    cache.set_value("subscription", "org_1", value="plan A")
    cache.set_value("org_data", "org_1", value="pool B")

    assert cache.get_value("subscription", "org_1") == "plan A"
    assert cache.get_value("org_data", "org_1") == "pool B"
    with pytest.raises(KeyError):
        cache.make_key("no_such_namespace", "x")


def test_ttls_follow_the_report_and_settings_override_them(settings):
    assert {name: cache.ttl_for(name) for name in cache.DEFAULT_TTLS} == {
        "credit_balance": 60,
        "subscription": 300,
        "pricing_rules": 1800,
        "user_tier": 300,
        "org_data": 600,
        "analytics": 120,
    }
    settings.CACHE_TTLS = {"analytics": 5}
    assert cache.ttl_for("analytics") == 5


def test_an_expired_value_is_recomputed(settings):
    settings.CACHE_TTLS = {"analytics": 1}
    values = iter(["first", "second"])

    assert cache.get_or_set("analytics", "report", compute=lambda: next(values)) == ("first", False)
    assert cache.get_or_set("analytics", "report", compute=lambda: next(values)) == ("first", True)
    time.sleep(1.1)
    assert cache.get_or_set("analytics", "report", compute=lambda: next(values)) == ("second", False)


def test_hard_expiry_removes_the_key_from_redis(settings, monkeypatch):
    monkeypatch.setattr(cache, "STALE_GRACE_SECONDS", 0)
    cache.set_value("analytics", "short", value=1, ttl=1)
    assert django_cache.get(cache.make_key("analytics", "short")) is not None
    time.sleep(1.2)
    assert django_cache.get(cache.make_key("analytics", "short")) is None


def test_pattern_deletion_uses_scan_and_only_touches_matching_keys():
    for user_id in (1, 2, 3):
        cache.set_value("credit_balance", cache.user_part(user_id), "balance", value=user_id)
    cache.set_value("subscription", cache.org_part(1), "current", value="kept")
    keys_calls, scan_calls = redis_command_calls("keys"), redis_command_calls("scan")

    deleted = cache.delete_pattern("credit_balance:user_*")

    assert deleted == 3
    assert cache.get_value("credit_balance", cache.user_part(2), "balance") is None
    assert cache.get_value("subscription", cache.org_part(1), "current") == "kept"
    assert redis_command_calls("keys") == keys_calls
    assert redis_command_calls("scan") > scan_calls


def test_user_and_org_invalidation_delete_every_view_of_them():
    user_keys, org_keys = cache.user_keys(7), cache.org_keys(5)
    assert len(user_keys) == 3
    assert len(org_keys) == 3
    for key in [*user_keys, *org_keys]:
        django_cache.set(key, (0.0, key))
    cache.set_value("credit_balance", cache.user_part(8), "balance", value="other user")

    cache.invalidate_user_cache(7)
    cache.invalidate_org_cache(5)

    assert django_cache.get_many([*user_keys, *org_keys]) == {}
    assert cache.get_value("credit_balance", cache.user_part(8), "balance") == "other user"


def test_concurrent_misses_on_one_key_run_the_loader_once():
    loads = []
    lock = threading.Lock()

    def slow_load():
        with lock:
            loads.append(1)
        time.sleep(0.2)
        return "value"

    results = run_in_threads(16, lambda i: cache.get_or_set("analytics", "hot", compute=slow_load))

    assert len(loads) == 1
    assert [value for value, _ in results] == ["value"] * 16


def test_a_stale_value_is_served_while_one_thread_recomputes(settings):
    settings.CACHE_TTLS = {"analytics": 1}
    cache.get_or_set("analytics", "hot", compute=lambda: "old")
    time.sleep(1.1)
    loads = []

    def slow_load():
        loads.append(1)
        time.sleep(0.3)
        return "new"

    results = run_in_threads(8, lambda i: cache.get_or_set("analytics", "hot", compute=slow_load))

    assert len(loads) == 1
    assert sorted(value for value, _ in results) == ["new"] + ["old"] * 7
    assert cache.get_value("analytics", "hot") == "new"


def test_stats_count_hits_misses_sets_and_deletes_per_namespace():
    cache.get_or_set("org_data", "a", compute=lambda: 1)
    cache.get_or_set("org_data", "a", compute=lambda: 1)
    cache.get_or_set("org_data", "a", compute=lambda: 1)
    cache.invalidate_org_cache(1)

    stats = cache.get_stats()

    org_data = stats["namespaces"]["org_data"]
    assert (org_data["hits"], org_data["misses"], org_data["sets"]) == (2, 1, 1)
    assert org_data["hit_rate"] == pytest.approx(66.67)
    assert org_data["deletes"] == 2  # the org's two org_data views
    assert stats["total"]["deletes"] == 3  # plus its subscription view


def test_stats_add_up_across_processes():
    script = (
        "import django; django.setup();"
        "from ops_center import cache;"
        "[cache.get_or_set('analytics', 'shared', compute=lambda: 1) for _ in range(5)];"
        "cache.stats.flush()"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], cwd=PROJECT_DIR, env=env, check=True, timeout=60)

    analytics = cache.get_stats()["namespaces"]["analytics"]

    # The first process misses once and hits four times; the second hits five times.
    assert (analytics["hits"], analytics["misses"]) == (9, 1)


def test_health_reads_redis_info():
    health = cache.health_check()

    assert health["status"] == "connected"
    assert health["healthy"] is True
    assert isinstance(health["keyspace_hits"], int)
    assert health["used_memory_human"]
    assert health["connected_clients"] >= 1
