"""Cache hits answered at the WSGI layer (ops_center.fast_wsgi), driven through config.wsgi's real application.

Which layer answered is read off Django's ``request_started`` signal: its
handler sends it for every request, the fast WSGI path never. Each hit is
compared whole (status, every header, the body's bytes) with the same request
answered by Django's handler on the same warm cache.
"""

import contextlib
import importlib
from decimal import Decimal

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import RequestFactory

from billing.services import credits_purchase
from billing.tests.factories import CreditPoolFactory, PlanFactory, SubscriptionFactory
from ops_center import cache, metrics
from ops_center.fast_wsgi import HANDLED_MIDDLEWARE, FastReadApplication, handles
from ops_center.tests.api_support import SchemaCheckedClient
from orgs.models import ApiKey
from orgs.services import api_key_revoke
from orgs.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

BALANCE = "/api/v1/credits/balance"


@contextlib.contextmanager
def requests_counted():
    """Count Django's requests, and keep its handler from closing the test's connection (as the test client does)."""
    started = []

    def count(**_kwargs):
        started.append(1)

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    request_started.connect(count)
    try:
        yield started
    finally:
        request_started.disconnect(count)
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def call(application, path: str, raw_key: str | None, method: str = "GET", **extra) -> tuple[str, dict, bytes]:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"} if raw_key else {}
    environ = RequestFactory().generic(method, path, **headers, **extra).environ
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer.update(status=status, headers=response_headers)

    chunks = application(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    return answer["status"], dict(answer["headers"]), body


@pytest.fixture
def application():
    return FastReadApplication(WSGIHandler())


@pytest.fixture
def caller():
    user = UserFactory()
    credits_purchase(user=user, credits=Decimal("12.5"))
    return user, SchemaCheckedClient().as_user(user).raw_key


def test_the_middleware_it_accounts_for_are_the_ones_configured(settings):
    production = importlib.import_module("config.settings").MIDDLEWARE

    assert tuple(production) == HANDLED_MIDDLEWARE
    assert handles(settings.MIDDLEWARE)  # the test settings drop WhiteNoise, which an API GET never reaches
    assert not handles([*production, "some.new.Middleware"])
    assert not handles([name for name in production if "clickjacking" not in name])


def test_config_wsgi_serves_through_it():
    assert isinstance(importlib.import_module("config.wsgi").application, FastReadApplication)


@pytest.mark.parametrize("path", [BALANCE, "/api/v1/credits/transactions?limit=20", "/api/v1/credits/usage/summary"])
def test_a_hit_skips_django_and_is_the_same_answer_to_the_byte(application, caller, path):
    _, raw_key = caller
    with requests_counted() as started:
        first = call(application, path, raw_key)  # a miss: Django fills the cache and learns the key
        assert (first[0], first[1]["X-Cache"], len(started)) == ("200 OK", "MISS", 1)

        fast = call(application, path, raw_key)
        assert len(started) == 1  # not Django's
        ordinary = call(application.django_application, path, raw_key)
        assert len(started) == 2

    assert fast == ordinary
    assert fast[1]["X-Cache"] == "HIT"
    assert {"Content-Length", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"} <= set(fast[1])


def test_an_org_read_resolves_its_id_and_is_the_same_answer(application):
    org = OrganizationFactory()
    SubscriptionFactory(org=org, plan=PlanFactory(code="pro", name="Pro", price_minor=4900))
    CreditPoolFactory(org=org, total_credits=Decimal("1000"))
    member = MembershipFactory(org=org, role="member").user
    raw_key = SchemaCheckedClient().as_user(member).raw_key
    path = f"/api/v1/org-billing/organizations/{org.pk}/subscription"

    with requests_counted() as started:
        call(application, path, raw_key)
        fast = call(application, path, raw_key)
        ordinary = call(application.django_application, path, raw_key)

    assert len(started) == 2
    assert fast == ordinary
    assert fast[0] == "200 OK"


def test_a_hit_is_timed_under_its_route(application, caller):
    _, raw_key = caller
    labels = {"method": "GET", "route": "api/v1/credits/balance", "status": "200"}
    with requests_counted():
        call(application, BALANCE, raw_key)
        before = metrics.REQUEST_LATENCY.collect()[0]
        counted = {sample.name: sample.value for sample in before.samples if sample.labels.items() >= labels.items()}
        call(application, BALANCE, raw_key)
    after = {
        sample.name: sample.value
        for sample in metrics.REQUEST_LATENCY.collect()[0].samples
        if sample.labels.items() >= labels.items()
    }

    assert (
        after["ops_center_http_request_duration_seconds_count"]
        == counted["ops_center_http_request_duration_seconds_count"] + 1
    )


def test_a_miss_a_revoked_key_and_a_post_are_djangos(application, caller, django_capture_on_commit_callbacks):
    user, raw_key = caller
    with requests_counted() as started:
        call(application, BALANCE, raw_key)
        cache.invalidate_user_cache(user.pk)
        missed = call(application, BALANCE, raw_key)
        posted = call(application, BALANCE, raw_key, method="POST")
        with django_capture_on_commit_callbacks(execute=True):  # the revocation's evictions, as its commit runs them
            api_key_revoke(api_key=ApiKey.objects.get(user=user))
        revoked = call(application, BALANCE, raw_key)

    assert len(started) == 4
    assert (missed[0], missed[1]["X-Cache"]) == ("200 OK", "MISS")
    assert revoked[0] == "401 Unauthorized"
    assert posted[0] == "405 Method Not Allowed"


def test_an_https_redirect_and_a_foreign_host_are_djangos(settings, caller):
    _, raw_key = caller
    settings.SECURE_SSL_REDIRECT = True
    application = FastReadApplication(WSGIHandler())  # the middleware read their settings when built
    with requests_counted() as started:
        call(application, BALANCE, raw_key, secure=True)  # fills the cache
        redirected = call(application, BALANCE, raw_key)
        foreign = call(application, BALANCE, raw_key, secure=True, HTTP_HOST="evil.example")
        served = call(application, BALANCE, raw_key, secure=True)

    assert redirected[0] == "301 Moved Permanently"
    assert redirected[1]["Location"] == "https://testserver/api/v1/credits/balance"
    assert foreign[0] == "400 Bad Request"
    assert len(started) == 3  # all but the last, a hit over HTTPS
    assert served[1]["X-Cache"] == "HIT"
    assert "Strict-Transport-Security" in served[1]
