"""Idempotency-Key on POSTs: replays return the first response and write nothing."""

from decimal import Decimal

import pytest

from billing.models import CreditTransaction, Invoice
from billing.services import credits_purchase
from ops_center.models import IdempotencyRecord

pytestmark = pytest.mark.django_db


def test_replay_returns_the_first_response_and_writes_nothing(user_api, user):
    first = user_api.post("/api/v1/credits/purchases", {"credits": "10"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    replay = user_api.post("/api/v1/credits/purchases", {"credits": "10"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true"
    assert Invoice.objects.filter(user=user).count() == 1
    assert CreditTransaction.objects.get(user=user).idempotency_key == "k-1"


def test_same_key_with_another_body_is_422(user_api, user):
    user_api.post("/api/v1/credits/purchases", {"credits": "10"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")

    response = user_api.post("/api/v1/credits/purchases", {"credits": "11"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert CreditTransaction.objects.filter(user=user).count() == 1


def test_a_failed_request_keeps_no_record_so_a_retry_runs_afresh(user_api, user):
    body = {"service": "embedding", "units": 1, "credits": "5"}
    refused = user_api.post("/api/v1/credits/usage", body, format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    assert refused.status_code == 402
    assert not IdempotencyRecord.objects.filter(key="k-3").exists()

    credits_purchase(user=user, credits=Decimal("5"))
    retried = user_api.post("/api/v1/credits/usage", body, format="json", HTTP_IDEMPOTENCY_KEY="k-3")

    assert retried.status_code == 201
    assert retried.json()["balance"] == "0.0000"


def test_keys_are_per_user(api, user_api, user):
    from orgs.tests.factories import UserFactory

    other_api = type(user_api)().as_user(UserFactory())
    user_api.post("/api/v1/credits/purchases", {"credits": "10"}, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    response = other_api.post(
        "/api/v1/credits/purchases", {"credits": "10"}, format="json", HTTP_IDEMPOTENCY_KEY="shared"
    )

    assert response.status_code == 201
    assert Invoice.objects.count() == 2


@pytest.mark.parametrize("key", ["", "x" * 129, "naïve"])
def test_malformed_keys_are_refused(user_api, key):
    response = user_api.post("/api/v1/credits/purchases", {"credits": "10"}, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert not Invoice.objects.exists()


def test_purge_keeps_recent_keys_and_drops_old_ones(user_api, settings):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    user_api.post("/api/v1/credits/purchases", {"credits": "10"}, format="json", HTTP_IDEMPOTENCY_KEY="old")
    user_api.post("/api/v1/credits/purchases", {"credits": "10"}, format="json", HTTP_IDEMPOTENCY_KEY="new")
    IdempotencyRecord.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_RETENTION_HOURS + 1)
    )
    IdempotencyRecord.objects.filter(key="new").update(created_at=timezone.now() - timedelta(hours=24))

    call_command("purge_idempotency_keys")

    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
