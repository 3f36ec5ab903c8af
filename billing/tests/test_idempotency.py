"""Idempotency-Key on POSTs: replays return the first response and write nothing."""

from decimal import Decimal
from typing import ClassVar

import orjson
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import CreditTransaction, Invoice
from billing.payments import Charge
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


def test_a_replay_whose_rerun_is_refused_still_replays_the_first_answer(user_api, user, default_catalog):
    credits_purchase(user=user, credits=Decimal("5"))
    body = {"service": "embedding", "units": 1, "credits": "5"}
    first = user_api.post("/api/v1/credits/usage", body, format="json", HTTP_IDEMPOTENCY_KEY="spend-all")

    replay = user_api.post("/api/v1/credits/usage", body, format="json", HTTP_IDEMPOTENCY_KEY="spend-all")

    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true"
    assert CreditTransaction.objects.filter(user=user, transaction_type="usage").count() == 1
    assert user.credit_account.balance == Decimal("0")


def test_the_record_is_written_whole_in_one_statement(user_api, user, default_catalog):
    credits_purchase(user=user, credits=Decimal("5"))
    table = IdempotencyRecord._meta.db_table

    with CaptureQueriesContext(connection) as queries:
        response = user_api.post(
            "/api/v1/credits/usage", {"service": "embedding", "units": 1}, format="json", HTTP_IDEMPOTENCY_KEY="one"
        )

    assert response.status_code == 201
    touching_the_record = [query["sql"].split()[0] for query in queries.captured_queries if table in query["sql"]]
    assert touching_the_record == ["INSERT"]
    record = IdempotencyRecord.objects.get(key="one")
    assert (record.status_code, orjson.loads(record.response_body)) == (201, response.json())


@pytest.mark.postgresql_only("the personal debit is one CTE statement on PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_a_keyed_debit_is_the_debit_statement_and_the_record_and_nothing_else(user_api, user, default_catalog):
    # given: a funded user whose principal and pricing rule are cached by an earlier debit
    credits_purchase(user=user, credits=Decimal("5"))
    body = {"service": "embedding", "units": 1, "credits": "0.0001"}
    assert user_api.post("/api/v1/credits/usage", body, format="json", HTTP_IDEMPOTENCY_KEY="warm").status_code == 201

    with CaptureQueriesContext(connection) as queries:
        response = user_api.post("/api/v1/credits/usage", body, format="json", HTTP_IDEMPOTENCY_KEY="counted")

    # then: one statement that commits by itself: the UPDATE, the ledger INSERT, the rollups and the
    # key's record, whose answer is left to be rendered from the ledger row
    assert response.status_code == 201
    statements = [query["sql"] for query in queries.captured_queries]
    assert [sql.split()[0] for sql in statements] == ["WITH"], statements
    assert f"INSERT INTO {IdempotencyRecord._meta.db_table}" in statements[0]
    record = IdempotencyRecord.objects.get(user_id=user.pk, key="counted")
    assert (record.status_code, record.response_body) == (None, None)


@pytest.mark.postgresql_only("the personal debit is one CTE statement on PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_a_keyed_debit_that_crosses_the_alert_threshold_takes_a_transaction_with_its_record(
    user_api, user, default_catalog
):
    # given: 5 credits, with a low-balance threshold at 4.5
    credits_purchase(user=user, credits=Decimal("5"))
    assert user_api.put("/api/v1/credits/alerts", {"low_balance_threshold": "4.5"}, format="json").status_code == 200
    body = {"service": "embedding", "units": 1, "credits": "0.25"}
    assert user_api.post("/api/v1/credits/usage", body, format="json", HTTP_IDEMPOTENCY_KEY="warm").status_code == 201

    with CaptureQueriesContext(connection) as queries:
        response = user_api.post("/api/v1/credits/usage", body, format="json", HTTP_IDEMPOTENCY_KEY="crossing")

    # then: the one statement declines (4.75 -> 4.5 crosses); the debit, its alert (the SELECT finds
    # no webhook endpoint to send it to) and the record commit together, the record whole
    assert response.status_code == 201
    statements = [query["sql"] for query in queries.captured_queries]
    steps = [sql.split()[0] for sql in statements]
    assert steps == ["WITH", "BEGIN", "WITH", "SELECT", "INSERT", "COMMIT"], statements
    assert f"INSERT INTO {IdempotencyRecord._meta.db_table}" in statements[-2]
    record = IdempotencyRecord.objects.get(user_id=user.pk, key="crossing")
    assert (record.status_code, orjson.loads(record.response_body)) == (201, response.json())


class KeyHonouringGateway:
    """Like real processors: a repeated idempotency key gets the first charge back, not a new one."""

    charges: ClassVar[dict[str, Charge]] = {}
    calls: ClassVar[list[str]] = []

    def charge(self, *, idempotency_key: str, **_charge) -> Charge:
        self.calls.append(idempotency_key)
        return self.charges.setdefault(idempotency_key, Charge(reference=f"charge_{len(self.charges) + 1}"))


def test_a_replayed_purchase_asks_the_gateway_with_the_same_key(user_api, user, settings):
    settings.PAYMENT_GATEWAY = f"{__name__}.KeyHonouringGateway"
    KeyHonouringGateway.charges.clear()
    KeyHonouringGateway.calls.clear()

    first = user_api.post("/api/v1/credits/purchases", {"credits": "10"}, format="json", HTTP_IDEMPOTENCY_KEY="buy")
    replay = user_api.post("/api/v1/credits/purchases", {"credits": "10"}, format="json", HTTP_IDEMPOTENCY_KEY="buy")

    assert replay.json() == first.json()
    assert len(set(KeyHonouringGateway.calls)) == 1  # however often the write ran, one charge
    (charge,) = KeyHonouringGateway.charges.values()
    assert CreditTransaction.objects.get(user=user).metadata["payment_reference"] == charge.reference
    assert Invoice.objects.filter(user=user).count() == 1
