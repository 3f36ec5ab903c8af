"""The webhook and alert endpoints through the HTTP API: behaviour, pagination, idempotency and authz."""

from decimal import Decimal

import pytest
from django.utils import timezone

from billing.services import credits_consume, credits_purchase
from billing.tests.factories import CreditPoolFactory
from ops_center.tests.api_support import SchemaCheckedClient
from orgs.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import endpoint_ping
from webhooks.tests.factories import WebhookEndpointFactory

pytestmark = pytest.mark.django_db

WEBHOOKS = "/api/v1/webhooks"
BODY = {"url": "https://hooks.example.test/in", "events": ["credits.balance_low", "credits.depleted"]}


@pytest.fixture(autouse=True)
def _names_resolve_publicly(monkeypatch):
    """No network here: hooks.example.test 'resolves' to a public address."""
    from webhooks import targets

    real = targets.socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host == "hooks.example.test":
            return [(2, 1, 6, "", ("93.184.216.34", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(targets.socket, "getaddrinfo", fake)


def test_create_shows_the_secret_once_then_list_read_update_delete(user_api, user):
    created = user_api.post(WEBHOOKS, {**BODY, "description": "alerts"}, format="json")

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["credits.balance_low", "credits.depleted"]
    assert (body["user_id"], body["org_id"], body["enabled"]) == (user.pk, None, True)
    endpoint_id = body["id"]

    listed = user_api.get(WEBHOOKS).json()["results"]
    assert [item["id"] for item in listed] == [endpoint_id]
    assert "secret" not in listed[0]
    read = user_api.get(f"{WEBHOOKS}/{endpoint_id}").json()
    assert "secret" not in read
    assert read["description"] == "alerts"

    patched = user_api.patch(
        f"{WEBHOOKS}/{endpoint_id}", {"events": ["credits.purchased"], "enabled": False}, format="json"
    )
    assert patched.status_code == 200
    assert patched.json()["events"] == ["credits.purchased"]
    assert (patched.json()["enabled"], patched.json()["disabled_reason"]) == (False, "manual")
    enabled = user_api.patch(f"{WEBHOOKS}/{endpoint_id}", {"enabled": True}, format="json").json()
    assert (enabled["enabled"], enabled["disabled_reason"], enabled["disabled_at"]) == (True, "", None)

    deleted = user_api.delete(f"{WEBHOOKS}/{endpoint_id}")
    assert (deleted.status_code, deleted.json()) == (200, {"id": endpoint_id, "deleted": True})
    assert user_api.get(f"{WEBHOOKS}/{endpoint_id}").status_code == 404
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://hooks.example.test/in", "events": []},
        {"url": "https://hooks.example.test/in", "events": ["ping"]},
        {"url": "https://hooks.example.test/in", "events": ["credits.unknown"]},
        {"url": "https://hooks.example.test/in"},
        {"events": ["credits.depleted"]},
        {"url": 5, "events": ["credits.depleted"]},
    ],
)
def test_bad_bodies_are_400(user_api, body):
    response = user_api.post(WEBHOOKS, body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("validation_error", "invalid_webhook_url")


def test_a_replayed_idempotency_key_returns_the_first_answer_and_creates_once(user_api):
    first = user_api.post(WEBHOOKS, BODY, format="json", HTTP_IDEMPOTENCY_KEY="hook-1")
    again = user_api.post(WEBHOOKS, BODY, format="json", HTTP_IDEMPOTENCY_KEY="hook-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert WebhookEndpoint.objects.count() == 1
    other = user_api.post(WEBHOOKS, {**BODY, "description": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="hook-1")
    assert other.status_code == 422


def test_endpoints_per_owner_are_capped(user_api, settings):
    settings.WEBHOOK_MAX_ENDPOINTS = 2
    for _ in range(2):
        assert user_api.post(WEBHOOKS, BODY, format="json").status_code == 201

    response = user_api.post(WEBHOOKS, BODY, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "too_many_webhook_endpoints"


def test_rotate_returns_a_new_secret_once(user_api, user):
    endpoint = WebhookEndpointFactory(user=user)
    old = endpoint.secret

    response = user_api.post(f"{WEBHOOKS}/{endpoint.pk}/rotate-secret")

    assert response.status_code == 200
    assert response.json()["secret"].startswith("whsec_")
    assert response.json()["secret"] != old
    endpoint.refresh_from_db()
    assert (endpoint.secret, endpoint.previous_secret) == (response.json()["secret"], old)
    assert user_api.get(f"{WEBHOOKS}/{endpoint.pk}").json()["previous_secret_expires_at"] is not None


def test_deliveries_are_cursor_pages_newest_first_and_redeliver_and_test_queue_more(user_api, user):
    endpoint = WebhookEndpointFactory(user=user)
    deliveries = [endpoint_ping(endpoint=endpoint) for _ in range(5)]

    first = user_api.get(f"{WEBHOOKS}/{endpoint.pk}/deliveries", {"limit": 3}).json()
    second = user_api.get(f"{WEBHOOKS}/{endpoint.pk}/deliveries", {"limit": 3, "cursor": first["next_cursor"]}).json()

    ids = [row["id"] for row in first["results"] + second["results"]]
    assert ids == [delivery.pk for delivery in reversed(deliveries)]
    assert second["next_cursor"] is None
    row = first["results"][0]
    assert (row["event_type"], row["status"], row["attempts"]) == ("ping", "pending", 0)
    assert row["event_uid"] == deliveries[-1].event.uid
    assert row["next_attempt_at"] is not None

    redelivered = user_api.post(f"{WEBHOOKS}/{endpoint.pk}/deliveries/{deliveries[0].pk}/redeliver")
    assert redelivered.status_code == 202
    assert redelivered.json()["event_uid"] == deliveries[0].event.uid
    assert redelivered.json()["id"] != deliveries[0].pk
    tested = user_api.post(f"{WEBHOOKS}/{endpoint.pk}/test")
    assert tested.status_code == 202
    assert tested.json()["event_type"] == "ping"
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 7


def test_a_cursor_of_another_endpoint_is_refused(user_api, user):
    first, second = WebhookEndpointFactory(user=user), WebhookEndpointFactory(user=user)
    for _ in range(3):
        endpoint_ping(endpoint=first)
    cursor = user_api.get(f"{WEBHOOKS}/{first.pk}/deliveries", {"limit": 1}).json()["next_cursor"]

    response = user_api.get(f"{WEBHOOKS}/{second.pk}/deliveries", {"cursor": cursor})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


def test_a_disabled_endpoint_cannot_be_tested_or_redelivered(user_api, user):
    endpoint = WebhookEndpointFactory(user=user)
    delivery = endpoint_ping(endpoint=endpoint)
    user_api.patch(f"{WEBHOOKS}/{endpoint.pk}", {"enabled": False}, format="json")

    assert user_api.post(f"{WEBHOOKS}/{endpoint.pk}/test").status_code == 409
    assert user_api.post(f"{WEBHOOKS}/{endpoint.pk}/deliveries/{delivery.pk}/redeliver").status_code == 409
    delivery.refresh_from_db()
    assert (delivery.status, delivery.error) == ("failed", "endpoint disabled")


def test_a_disabled_by_failure_endpoint_shows_it(user_api, user):
    endpoint = WebhookEndpointFactory(
        user=user, is_enabled=False, disabled_reason="failing", disabled_at=timezone.now()
    )

    body = user_api.get(f"{WEBHOOKS}/{endpoint.pk}").json()

    assert (body["enabled"], body["disabled_reason"]) == (False, "failing")


# -- Alerts -------------------------------------------------------------------


def test_credits_alerts_read_set_and_turn_off(user_api, user):
    assert user_api.get("/api/v1/credits/alerts").json() == {"low_balance_threshold": None}

    response = user_api.put("/api/v1/credits/alerts", {"low_balance_threshold": "50"}, format="json")

    assert response.status_code == 200
    assert response.json() == {"low_balance_threshold": "50.0000"}
    assert user_api.get("/api/v1/credits/alerts").json() == {"low_balance_threshold": "50.0000"}
    off = user_api.put("/api/v1/credits/alerts", {"low_balance_threshold": None}, format="json")
    assert off.json() == {"low_balance_threshold": None}


@pytest.mark.parametrize("value", [50, "-1", "1e3", "abc", "", "1.00001"])
def test_credits_alerts_refuse_bad_thresholds(user_api, value):
    response = user_api.put("/api/v1/credits/alerts", {"low_balance_threshold": value}, format="json")

    assert response.status_code == 400


@pytest.mark.usefixtures("default_catalog")
def test_the_threshold_set_through_the_api_drives_the_alert(user_api, user):
    credits_purchase(user=user, credits=Decimal("100"))
    WebhookEndpointFactory(user=user)
    user_api.put("/api/v1/credits/alerts", {"low_balance_threshold": "50"}, format="json")

    credits_consume(user=user, service="embedding", units=1, credits=Decimal("60"))

    assert WebhookDelivery.objects.filter(event__type="credits.balance_low").count() == 1


# -- Who may do what ----------------------------------------------------------


class Org:
    """An org with a pool, an admin, a member, another org's admin and a staff user; one endpoint and delivery."""

    def __init__(self):
        self.org = OrganizationFactory()
        CreditPoolFactory(org=self.org)
        self.admin = MembershipFactory(org=self.org, role="admin").user
        self.owner = MembershipFactory(org=self.org, role="owner").user
        self.member = MembershipFactory(org=self.org, role="member").user
        self.other_admin = MembershipFactory(org=OrganizationFactory(), role="admin").user
        self.staff = UserFactory(is_staff=True)
        self.outsider = UserFactory()
        self.endpoint = WebhookEndpointFactory(user=None, org=self.org)
        self.delivery = endpoint_ping(endpoint=self.endpoint)

    @property
    def base(self) -> str:
        return f"/api/v1/org-billing/organizations/{self.org.pk}/webhooks"


def org_operations(org: Org) -> dict:
    one = f"{org.base}/{org.endpoint.pk}"
    return {
        "list": ("get", org.base, None),
        "create": ("post", org.base, BODY),
        "read": ("get", one, None),
        "update": ("patch", one, {"description": "changed"}),
        "rotate": ("post", f"{one}/rotate-secret", None),
        "deliveries": ("get", f"{one}/deliveries", None),
        "redeliver": ("post", f"{one}/deliveries/{org.delivery.pk}/redeliver", None),
        "test": ("post", f"{one}/test", None),
        "delete": ("delete", one, None),
        "alerts_read": ("get", f"/api/v1/org-billing/organizations/{org.org.pk}/credit-pool/alerts", None),
        "alerts_set": (
            "put",
            f"/api/v1/org-billing/organizations/{org.org.pk}/credit-pool/alerts",
            {"low_pool_threshold": "100", "low_allocation_threshold": None},
        ),
    }


EXPECTED_OK = {
    "list": 200,
    "create": 201,
    "read": 200,
    "update": 200,
    "rotate": 200,
    "deliveries": 200,
    "redeliver": 202,
    "test": 202,
    "delete": 200,
    "alerts_read": 200,
    "alerts_set": 200,
}


@pytest.mark.parametrize("operation", list(EXPECTED_OK))
@pytest.mark.parametrize(
    ("role", "allowed", "refusal"),
    [
        ("admin", True, None),
        ("owner", True, None),
        ("staff", True, None),
        ("member", False, 403),
        ("other_admin", False, 404),
        ("outsider", False, 404),
    ],
)
def test_org_webhooks_and_alerts_authz(operation, role, allowed, refusal):
    org = Org()
    method, path, body = org_operations(org)[operation]
    client = SchemaCheckedClient().as_user(getattr(org, role))

    response = getattr(client, method)(path, body, format="json") if body else getattr(client, method)(path)

    expected = EXPECTED_OK[operation] if allowed else refusal
    assert response.status_code == expected, response.content
    if not allowed:
        assert WebhookEndpoint.objects.filter(pk=org.endpoint.pk).exists()
        assert WebhookEndpoint.objects.count() == 1


@pytest.mark.parametrize("operation", list(EXPECTED_OK))
def test_org_urls_without_a_key_are_401(api, operation):
    org = Org()
    method, path, body = org_operations(org)[operation]

    response = getattr(api, method)(path, body, format="json") if body else getattr(api, method)(path)

    assert response.status_code == 401


def test_staff_get_404_for_an_org_that_does_not_exist():
    client = SchemaCheckedClient().as_user(UserFactory(is_staff=True))

    response = client.get("/api/v1/org-billing/organizations/999999/webhooks")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "org_not_found"


def own_operations(endpoint, delivery) -> dict:
    one = f"{WEBHOOKS}/{endpoint.pk}"
    return {
        "read": ("get", one, None),
        "update": ("patch", one, {"description": "changed"}),
        "rotate": ("post", f"{one}/rotate-secret", None),
        "deliveries": ("get", f"{one}/deliveries", None),
        "redeliver": ("post", f"{one}/deliveries/{delivery.pk}/redeliver", None),
        "test": ("post", f"{one}/test", None),
        "delete": ("delete", one, None),
    }


@pytest.mark.parametrize("operation", ["read", "update", "rotate", "deliveries", "redeliver", "test", "delete"])
@pytest.mark.parametrize("role", ["owner", "other_user", "org_admin", "staff"])
def test_personal_webhooks_are_their_owner_s_alone(operation, role):
    owner = UserFactory()
    endpoint = WebhookEndpointFactory(user=owner)
    delivery = endpoint_ping(endpoint=endpoint)
    org = Org()
    MembershipFactory(org=org.org, user=owner, role="member")
    callers = {"owner": owner, "other_user": UserFactory(), "org_admin": org.admin, "staff": org.staff}
    client = SchemaCheckedClient().as_user(callers[role])
    method, path, body = own_operations(endpoint, delivery)[operation]

    response = getattr(client, method)(path, body, format="json") if body else getattr(client, method)(path)

    if role == "owner":
        assert response.status_code == EXPECTED_OK[operation], response.content
    else:
        assert response.status_code == 404, response.content
        assert WebhookEndpoint.objects.filter(pk=endpoint.pk, description="").exists()


def test_an_org_endpoint_is_not_reachable_through_the_personal_scope():
    org = Org()
    client = SchemaCheckedClient().as_user(org.admin)

    assert client.get(f"{WEBHOOKS}/{org.endpoint.pk}").status_code == 404
    assert client.get(WEBHOOKS).json() == {"results": []}
