"""Liveness and readiness: /healthz touches nothing; /readyz is 503 without the database, degraded without Redis."""

import time

import pytest
from django.core.cache import cache as django_cache

from ops_center.tests.database import database_unreachable


def test_healthz_answers_without_touching_the_database(client):
    # No django_db mark: any database access in this test raises.
    response = client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.django_db
def test_readyz_is_ok_with_every_component_status(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["cache"]["status"] == "connected"
    for check in body["checks"].values():
        assert 0 <= check["latency_ms"] < 1000


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_when_the_database_refuses_connections(client):
    with database_unreachable() as saved:
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {
        "status": "down",
        "error": "OperationalError",
        "latency_ms": body["checks"]["database"]["latency_ms"],
    }
    assert body["checks"]["cache"]["status"] == "connected"
    assert elapsed < 3  # a refused connection fails at once, well inside the connect timeout
    text = response.content.decode()
    for leaked in (saved["NAME"], "refused", "127.0.0.1"):
        assert leaked not in text
    assert client.get("/readyz").status_code == 200  # and ready again once the database is back


@pytest.mark.django_db
def test_readyz_is_degraded_but_ready_while_redis_is_stopped(client, disposable_redis):
    assert client.get("/readyz").json()["status"] == "ok"

    disposable_redis.stop()
    first = client.get("/readyz")
    second = client.get("/readyz")

    for response in (first, second):
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "degraded"
        assert body["checks"]["database"]["status"] == "ok"
        assert body["checks"]["cache"]["status"] == "degraded"
    # The first probe paid one short socket timeout; the open circuit answers the next at once.
    assert first.json()["checks"]["cache"]["latency_ms"] < 1000
    assert second.json()["checks"]["cache"]["latency_ms"] < 50

    disposable_redis.start()
    time.sleep(0.6)  # one breaker cooldown
    assert client.get("/readyz").json()["status"] == "ok"
    assert django_cache.get("anything") is None
