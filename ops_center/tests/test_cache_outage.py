"""Redis outages with a real, second Redis that these tests stop and start."""

import time
from decimal import Decimal

import pytest
from django.test import override_settings
from redis.exceptions import RedisError

from billing.services import credits_purchase
from ops_center import cache, cache_backlog

pytestmark = pytest.mark.django_db


@pytest.fixture
def funded(user):
    credits_purchase(user=user, credits=Decimal("50"))
    return user


ENDPOINTS = ("/api/v1/credits/balance", "/api/v1/credits/usage/summary", "/api/v1/credits/transactions")


def test_every_endpoint_answers_from_the_database_while_redis_is_down(disposable_redis, user_api, funded):
    before = {path: user_api.get(path).json() for path in ENDPOINTS}

    disposable_redis.stop()
    during = {path: user_api.get(path) for path in ENDPOINTS for _ in range(10)}
    write = user_api.post("/api/v1/credits/usage", {"service": "embedding", "units": 1, "credits": "5"}, format="json")

    assert all(response.status_code == 200 for response in during.values())
    assert {path: response.json() for path, response in during.items()} == before
    assert write.status_code == 201
    assert write.json()["balance"] == "45.0000"
    assert user_api.get("/api/v1/credits/balance").json()["balance"] == "45.0000"
    # 31 requests, each several cache calls: the breaker lets one through per cooldown.
    assert cache.breaker.attempts_while_failing <= 2


def test_health_reports_degraded_and_recovers_after_restart(disposable_redis, user_api, funded):
    assert cache.health_check()["status"] == "connected"

    disposable_redis.stop()
    user_api.get("/api/v1/credits/balance")
    assert cache.health_check()["status"] == "degraded"

    disposable_redis.start()
    time.sleep(0.6)  # one breaker cooldown
    assert user_api.get("/api/v1/credits/balance")["X-Cache"] == "MISS"
    assert user_api.get("/api/v1/credits/balance")["X-Cache"] == "HIT"
    assert cache.health_check()["status"] == "connected"


def test_staff_health_endpoint_reports_degraded(disposable_redis, api):
    from orgs.tests.factories import UserFactory

    staff_api = api.as_user(UserFactory(is_staff=True))
    disposable_redis.stop()

    response = staff_api.get("/api/v1/cache/health")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["healthy"]) == ("degraded", False)


def test_writes_are_not_throttled_into_errors_while_redis_is_down(disposable_redis, user_api, funded):
    disposable_redis.stop()

    responses = [
        user_api.post("/api/v1/credits/usage", {"service": "embedding", "units": 1, "credits": "1"}, format="json")
        for _ in range(3)
    ]

    assert [response.status_code for response in responses] == [201, 201, 201]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_catalog")
def test_a_write_during_an_outage_is_never_followed_by_a_stale_read(disposable_redis, user_api, funded):
    import redis

    assert user_api.get("/api/v1/credits/balance").json()["balance"] == "50.0000"
    assert user_api.get("/api/v1/credits/balance")["X-Cache"] == "HIT"

    # Freeze Redis without losing its data: our calls time out while the old balance stays cached.
    redis.Redis(port=disposable_redis.port).execute_command("CLIENT", "PAUSE", "1500", "ALL")
    write = user_api.post("/api/v1/credits/usage", {"service": "embedding", "units": 1, "credits": "5"}, format="json")
    assert write.status_code == 201
    assert cache.breaker.is_open

    time.sleep(2.1)  # the pause ends and the breaker cools down
    after = user_api.get("/api/v1/credits/balance")

    assert after.json()["balance"] == "45.0000"
    assert after["X-Cache"] == "MISS"


@pytest.fixture
def fresh_backlog():
    cache.backlog.reset()
    yield cache.backlog
    cache.backlog.reset()


def test_a_failed_eviction_waits_in_postgresql_until_redis_has_answered_two_rounds(disposable_redis, fresh_backlog):
    from ops_center.models import PendingEviction

    key = cache.make_key("credit_balance", cache.user_part(1), "balance")
    disposable_redis.pause()
    try:
        cache.delete_keys([key])  # times out: the breaker opens and the key goes to the table
        assert list(PendingEviction.objects.values_list("key", flat=True)) == [key]
        with pytest.raises(RedisError):  # the DEL timed out: the row stays
            fresh_backlog.replay()
        assert PendingEviction.objects.count() == 1
    finally:
        disposable_redis.resume()

    cache.breaker.reset()
    cache.set_value("credit_balance", cache.user_part(1), "balance", value="stale")  # a reader's late SET
    assert cache.get_value("credit_balance", cache.user_part(1), "balance") == "stale"
    assert fresh_backlog.replay() == 0  # replayed, but a row is retired only by a second round
    assert cache.get_value("credit_balance", cache.user_part(1), "balance") is None
    assert fresh_backlog.replay() == 1
    assert not PendingEviction.objects.exists()


def test_an_eviction_skipped_by_an_open_breaker_is_recorded_without_touching_redis(disposable_redis, fresh_backlog):
    from ops_center.models import PendingEviction

    cache.breaker.record_failure()
    attempts = cache.breaker.attempts_while_failing
    cache.invalidate_user_cache(9)

    assert PendingEviction.objects.count() == len(cache.user_keys(9))
    assert cache.breaker.attempts_while_failing == attempts


def test_the_in_process_cache_keeps_no_backlog_and_runs_no_replayer(fresh_backlog, django_capture_on_commit_callbacks):
    from ops_center.models import PendingEviction

    local = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "backlog-test"}}
    with override_settings(CACHES=local):
        cache.set_value("user_tier", "apikey_x", value={"user_id": 1})
        with django_capture_on_commit_callbacks(execute=True):
            cache.invalidate_on_commit(keys=[cache.make_key("user_tier", "apikey_x")], durable=True)
        assert cache.get_value("user_tier", "apikey_x") is None
        assert cache_backlog.start_replayer() is None
    assert not PendingEviction.objects.exists()
