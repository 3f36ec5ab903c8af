"""The browser's middleware steps aside for API-key calls and runs as Django's own for everything else."""

from decimal import Decimal

import pytest
from django.conf import settings
from django.core import checks
from django.http import HttpResponse
from django.test import RequestFactory

from billing.services import credits_purchase
from ops_center.middleware import (
    BrowserAuthenticationMiddleware,
    BrowserMessageMiddleware,
    BrowserSessionMiddleware,
)
from ops_center.tests.api_support import SchemaCheckedClient
from orgs.tests.factories import UserFactory

BROWSER_ATTRIBUTES = ("session", "user", "_messages")


def what_the_view_saw(path: str, **headers: str) -> set[str]:
    """Run a request through the three, in MIDDLEWARE's order, to a view that notes what they set on it."""
    seen: set[str] = set()

    def view(request):
        seen.update(name for name in BROWSER_ATTRIBUTES if hasattr(request, name))
        return HttpResponse("ok")

    chain = BrowserSessionMiddleware(BrowserAuthenticationMiddleware(BrowserMessageMiddleware(view)))
    assert chain(RequestFactory().get(path, headers=headers)).status_code == 200
    return seen


def test_an_api_key_call_passes_them_by():
    assert what_the_view_saw("/api/v1/credits/balance", authorization="Bearer oc_abc_def") == set()
    assert what_the_view_saw("/api/v1/credits/balance", authorization="bearer oc_abc_def") == set()


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/v1/credits/balance", {}),  # a browser's session
        ("/api/v1/credits/balance", {"authorization": "Basic dXNlcjpwYXNz"}),
        ("/admin/", {"authorization": "Bearer oc_abc_def"}),  # a key is an API credential, not the admin's
    ],
)
def test_every_other_request_gets_them(path, headers):
    assert what_the_view_saw(path, **headers) == set(BROWSER_ATTRIBUTES)


def test_the_admin_still_finds_them_in_middleware():
    middleware_errors = [
        message
        for message in checks.run_checks(tags=[checks.Tags.admin])
        if message.id in {"admin.E408", "admin.E409", "admin.E410"}
    ]
    assert middleware_errors == []
    assert "ops_center.middleware.BrowserSessionMiddleware" in settings.MIDDLEWARE


@pytest.mark.django_db
def test_a_key_and_a_session_cookie_together_answer_as_the_keys_owner(api, user):
    """The key decides, as DRF's order of authentication classes always made it."""
    credits_purchase(user=user, credits=Decimal("7"))
    api.force_login(user)
    with_key = SchemaCheckedClient().as_user(UserFactory())
    with_key.cookies = api.cookies

    response = with_key.get("/api/v1/credits/balance")

    assert response.status_code == 200
    assert response.json()["balance"] == "0.0000"
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")
