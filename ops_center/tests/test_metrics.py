"""/metrics: protected by settings, per-route latency, cache events, queries and ledger writes, summed over
every gunicorn worker. And django-debug-toolbar stays out of production settings."""

import json
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import transaction
from prometheus_client.parser import text_string_to_metric_families

from billing.services import credits_purchase
from billing.tests.factories import CreditPoolFactory, PlanFactory, SubscriptionFactory
from ops_center.tests.live_server import PROJECT_DIR, LiveGunicorn
from orgs.models import Membership
from orgs.services import api_key_create
from orgs.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

TOKEN = "scrape-secret-for-tests"
LATENCY_COUNT = "ops_center_http_request_duration_seconds_count"


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of every sample called ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def series_labels(text: str, name: str) -> list[dict]:
    return [
        sample.labels
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


# Protection


def test_metrics_are_a_404_in_production_without_a_token(client, settings):
    settings.DEBUG, settings.METRICS_TOKEN = False, ""

    assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", TOKEN, f"Basic {TOKEN}", "Bearer t\u00f6ken"])
def test_with_a_token_a_scrape_without_it_is_401(client, settings, header):
    settings.METRICS_TOKEN = TOKEN
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}

    response = client.get("/metrics", **extra)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"ops_center" not in response.content


def test_with_the_token_a_scrape_gets_the_prometheus_text_format(client, settings):
    settings.METRICS_TOKEN = TOKEN

    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert b"# TYPE ops_center_http_request_duration_seconds histogram" in response.content


def test_without_a_token_metrics_are_open_in_development(client, settings):
    settings.DEBUG, settings.METRICS_TOKEN = True, ""

    assert client.get("/metrics").status_code == 200


# What is counted, in one process


@pytest.fixture
def scrape(client, settings):
    settings.METRICS_TOKEN = TOKEN
    return lambda: client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()


@pytest.mark.django_db
def test_requests_are_timed_by_route_pattern_and_status_with_their_queries(user_api, scrape):
    before = scrape()

    user_api.get("/api/v1/credits/balance")
    user_api.get("/api/v1/credits/no-such-thing")
    after = scrape()

    balance = {"method": "GET", "route": "api/v1/credits/balance", "status": "200"}
    assert metric(after, LATENCY_COUNT, **balance) - metric(before, LATENCY_COUNT, **balance) == 1
    unmatched = {"route": "<unmatched>", "status": "404"}
    assert metric(after, LATENCY_COUNT, **unmatched) - metric(before, LATENCY_COUNT, **unmatched) == 1
    queries = "ops_center_db_queries_total"
    # A cold read looks the key up and reads the balance from PostgreSQL.
    assert metric(after, queries, route="api/v1/credits/balance") > metric(
        before, queries, route="api/v1/credits/balance"
    )


@pytest.mark.django_db
def test_cache_hits_and_misses_are_counted_per_namespace(user_api, scrape):
    before = scrape()

    user_api.get("/api/v1/credits/balance")
    user_api.get("/api/v1/credits/balance")
    after = scrape()

    events = "ops_center_cache_events_total"
    for event, count in (("misses", 1), ("hits", 1), ("sets", 1)):
        added = metric(after, events, namespace="credit_balance", event=event) - metric(
            before, events, namespace="credit_balance", event=event
        )
        assert added == count, event


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_catalog")
def test_ledger_writes_are_counted_when_they_commit(user_api, user, scrape):
    writes = "ops_center_ledger_writes_total"
    before = metric(scrape(), writes, transaction_type="purchase")

    assert user_api.post("/api/v1/credits/purchases", {"credits": "5"}, format="json").status_code == 201

    def purchase_then_fail():
        with transaction.atomic():
            credits_purchase(user=user, credits=Decimal("7"))
            raise RuntimeError("rolled back: never a write")

    with pytest.raises(RuntimeError):
        purchase_then_fail()

    assert metric(scrape(), writes, transaction_type="purchase") - before == 1


# Every gunicorn worker


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("prometheus")
    (directory / "counter_424242.db").write_bytes(b"left by an earlier run")
    return directory


@pytest.fixture(scope="module")
def two_workers(django_db_setup, metrics_dir):
    server = LiveGunicorn(WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), METRICS_TOKEN=TOKEN).start()
    yield server
    server.stop()


def get(url: str, key: str | None = None, data: bytes | None = None) -> int:
    headers = {"Content-Type": "application/json"} if data else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a new connection every time
        return response.status


def live_scrape(server: LiveGunicorn) -> str:
    request = urllib.request.Request(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return response.read().decode()


def worker_pids(directory: Path) -> set[str]:
    return {path.stem.rsplit("_", 1)[1] for path in directory.glob("histogram_*.db")}


@pytest.mark.django_db(transaction=True)
def test_a_scrape_adds_up_the_requests_of_both_workers(two_workers, metrics_dir):
    assert not (metrics_dir / "counter_424242.db").exists()  # a fresh start drops stale files
    healthz = {"route": "healthz", "status": "200"}
    before = metric(live_scrape(two_workers), LATENCY_COUNT, **healthz)

    sent = 0
    # Fresh connections from 8 threads at once; the kernel hands them to both workers, soon if not at once.
    with ThreadPoolExecutor(8) as pool:
        while len(worker_pids(metrics_dir)) < 2 or sent < 200:
            assert sent < 3000, "one worker answered everything"
            assert set(pool.map(lambda _: get(f"{two_workers.url}/healthz"), range(100))) == {200}
            sent += 100

    assert len(worker_pids(metrics_dir)) == 2
    assert metric(live_scrape(two_workers), LATENCY_COUNT, **healthz) - before == sent


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_catalog")
def test_workers_count_routes_by_pattern_cache_events_and_ledger_writes(two_workers):
    org = OrganizationFactory()
    SubscriptionFactory(org=org, plan=PlanFactory(code="pro"))
    CreditPoolFactory(org=org)
    admin_key = api_key_create(user=MembershipFactory(org=org, role=Membership.Role.ADMIN).user)[1]
    user_key = api_key_create(user=UserFactory())[1]
    before = live_scrape(two_workers)

    for _ in range(6):
        assert get(f"{two_workers.url}/api/v1/org-billing/organizations/{org.id}/subscription", admin_key) == 200
    for _ in range(3):
        assert get(f"{two_workers.url}/api/v1/credits/purchases", user_key, data=b'{"credits": "5"}') == 201
    after = live_scrape(two_workers)

    route = "api/v1/org-billing/organizations/<id:org_id>/subscription"
    assert metric(after, LATENCY_COUNT, route=route, status="200") - metric(before, LATENCY_COUNT, route=route) == 6
    assert not [
        labels for labels in series_labels(after, LATENCY_COUNT) if f"organizations/{org.id}/" in labels["route"]
    ]
    writes = "ops_center_ledger_writes_total"
    assert metric(after, writes, transaction_type="purchase") - metric(before, writes, transaction_type="purchase") == 3
    events = "ops_center_cache_events_total"
    subscription_lookups = sum(
        metric(after, events, namespace="subscription", event=event)
        - metric(before, events, namespace="subscription", event=event)
        for event in ("hits", "misses")
    )
    assert subscription_lookups == 6


# django-debug-toolbar


PROBE = """
import json, sys, django
django.setup()
from django.conf import settings
import config.urls
print(json.dumps({
    "imported": "debug_toolbar" in sys.modules,
    "installed": "debug_toolbar" in settings.INSTALLED_APPS,
    "middleware": "debug_toolbar.middleware.DebugToolbarMiddleware" in settings.MIDDLEWARE,
    "urls": any("__debug__" in str(pattern.pattern) for pattern in config.urls.urlpatterns),
}))
"""


def toolbar_state(tmp_path: Path, debug: str) -> dict:
    env = {"DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": debug}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    env["PATH"] = str(Path(sys.executable).parent)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def test_debug_toolbar_is_never_imported_with_debug_off(tmp_path):
    assert toolbar_state(tmp_path, "0") == {"imported": False, "installed": False, "middleware": False, "urls": False}


def test_debug_toolbar_is_on_in_development(tmp_path):
    assert toolbar_state(tmp_path, "1") == {"imported": True, "installed": True, "middleware": True, "urls": True}
