"""A personal debit as one statement that commits by itself (``credits_consume_at_once``), and its fallback.

The statement declines, writing nothing, whenever the debit must take the
transaction: a shortfall, or an alert to emit with it. A keyed debit records
its key inside the statement, and replays render the answer from its ledger row.
"""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from billing import alerts
from billing.models import CreditAccount, CreditTransaction
from billing.services import credits_consume_at_once, credits_purchase
from ops_center.api import fast_reads
from ops_center.idempotency_claims import Claim
from ops_center.models import IdempotencyRecord
from ops_center.tests.api_support import SchemaCheckedClient, assert_error
from ops_center.tests.threads import run_in_threads
from webhooks.models import EventType, WebhookEvent
from webhooks.tests.factories import WebhookEndpointFactory

pytestmark = [
    pytest.mark.postgresql_only("the one-statement debit is PostgreSQL's; SQLite always takes the transaction"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("default_catalog"),
]

USAGE = "/api/v1/credits/usage"


def balance_of(user) -> Decimal:
    return CreditAccount.objects.get(user=user).balance


def written(user) -> tuple:
    return balance_of(user), CreditTransaction.objects.filter(user=user).count(), IdempotencyRecord.objects.count()


def client_with(raw_key: str) -> SchemaCheckedClient:
    client = SchemaCheckedClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


@pytest.fixture
def known_key(user_api, user):
    """A funded user whose key this worker knows (its first write went the ordinary way)."""
    credits_purchase(user=user, credits=Decimal("10"))
    assert user_api.post(USAGE, {"service": "embedding", "units": 1, "credits": "1"}, format="json").status_code == 201
    return user_api


@pytest.mark.parametrize(
    ("balance", "threshold", "cost", "declines"),
    [
        ("5", None, "1", False),
        ("5", None, "4.9999", False),
        ("5", None, "5", True),  # reaches 0: depleted
        ("5", None, "6", True),  # falls short
        ("5", "3", "1", False),  # 4 stays above 3
        ("5", "3", "2", True),  # lands on the threshold: crossed
        ("5", "3", "2.5", True),  # below it: crossed
        ("3", "3", "1", False),  # starts at the threshold, so it cannot cross it
        ("2", "3", "1", False),  # already below
        ("1", "3", "1", True),  # below, but reaches 0
        ("5", "0", "1", False),
    ],
)
def test_the_statement_declines_exactly_the_debits_that_alert_or_fall_short(user, balance, threshold, cost, declines):
    limit = None if threshold is None else Decimal(threshold)
    credits_purchase(user=user, credits=Decimal(balance))
    alerts.account_alerts_set(user_id=user.pk, low_balance_threshold=limit)
    before, after = Decimal(balance), Decimal(balance) - Decimal(cost)
    alerting = alerts.crossed(before=before, after=after, threshold=limit) or alerts.depleted(
        before=before, after=after
    )
    assert declines == (alerting or after < 0)  # the table agrees with billing.alerts
    rows_before = written(user)

    result = credits_consume_at_once(user=user, service="embedding", units=1, credits=Decimal(cost))

    if declines:
        assert result is None
        assert written(user) == rows_before
    else:
        assert result.balance == after == balance_of(user)
        row = CreditTransaction.objects.get(pk=result.transaction.pk)
        assert (row.amount, row.credits_before, row.credits_after) == (-Decimal(cost), before, after)


def test_inside_a_transaction_or_for_an_org_it_declines_and_writes_nothing(user):
    credits_purchase(user=user, credits=Decimal("5"))
    rows_before = written(user)

    with transaction.atomic():
        assert credits_consume_at_once(user=user, service="embedding", units=1) is None
    assert credits_consume_at_once(user=user, service="embedding", units=1, org_id=1) is None
    assert written(user) == rows_before
    assert not connection.in_atomic_block


def test_a_taken_key_fails_the_whole_statement(user):
    credits_purchase(user=user, credits=Decimal("5"))
    claim = Claim(user_id=user.pk, key="taken", endpoint=USAGE, request_fingerprint="f" * 64)
    assert credits_consume_at_once(user=user, service="embedding", units=1, credits=Decimal("1"), claim=claim)
    rows_before = written(user)

    other = Claim(user_id=user.pk, key="taken", endpoint=USAGE, request_fingerprint="0" * 64)
    with pytest.raises(IntegrityError):
        credits_consume_at_once(user=user, service="embedding", units=1, credits=Decimal("1"), claim=other)

    assert written(user) == rows_before
    assert balance_of(user) == Decimal("4")  # and the connection still works


def test_a_replay_repeats_the_first_answer_byte_for_byte_on_both_paths(known_key, user):
    body = {"service": "embedding", "units": 1, "credits": "0.25"}

    first = known_key.post(USAGE, body, format="json", HTTP_IDEMPOTENCY_KEY="meter-1")
    fast_replay = known_key.post(USAGE, body, format="json", HTTP_IDEMPOTENCY_KEY="meter-1")
    fast_reads.forget_key_owners()  # now DRF and run_idempotent answer
    ordinary_replay = known_key.post(USAGE, body, format="json", HTTP_IDEMPOTENCY_KEY="meter-1")
    reused = known_key.post(USAGE, {**body, "units": 2}, format="json", HTTP_IDEMPOTENCY_KEY="meter-1")

    assert first.status_code == fast_replay.status_code == ordinary_replay.status_code == 201
    assert "Idempotent-Replayed" not in first
    assert fast_replay["Idempotent-Replayed"] == ordinary_replay["Idempotent-Replayed"] == "true"
    assert fast_replay.content == ordinary_replay.content == first.content
    assert_error(reused, 422, "idempotency_key_reused")
    record = IdempotencyRecord.objects.get(user_id=user.pk, key="meter-1")
    assert (record.status_code, record.response_body) == (None, None)  # rendered from the ledger row
    assert balance_of(user) == Decimal("8.75")


def test_a_key_a_purchase_took_is_refused_for_a_debit(known_key, user):
    purchase = known_key.post("/api/v1/credits/purchases", {"credits": "1"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    rows_before = written(user)

    debit = known_key.post(USAGE, {"service": "embedding", "units": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k")

    assert purchase.status_code == 201
    assert_error(debit, 422, "idempotency_key_reused")
    assert written(user) == rows_before


def test_racing_debits_across_the_threshold_alert_once_and_never_overspend(known_key, user):
    # given: 9 credits after the warm-up, an alert at 4.5 and an endpoint; 12 debits of 1 race for them
    alerts.account_alerts_set(user_id=user.pk, low_balance_threshold=Decimal("4.5"))
    WebhookEndpointFactory(user=user)
    raw_key = known_key.raw_key

    def debit(index):
        client = client_with(raw_key)
        body = {"service": "embedding", "units": 1, "credits": "1"}
        return client.post(USAGE, body, format="json", HTTP_IDEMPOTENCY_KEY=f"race-{index}").status_code

    answers = sorted(run_in_threads(12, debit))

    # then: 9 went through and 3 fell short; one crossing of 4.5 (5 -> 4) and one of 0 (1 -> 0)
    assert answers == [201] * 9 + [402] * 3
    assert balance_of(user) == Decimal("0")
    assert IdempotencyRecord.objects.filter(user_id=user.pk).count() == 9
    [low] = WebhookEvent.objects.filter(type=EventType.CREDITS_BALANCE_LOW)
    [depleted] = WebhookEvent.objects.filter(type=EventType.CREDITS_DEPLETED)
    assert '"balance_after":"4.0000"' in low.body.replace(" ", "")
    assert '"balance_after":"0.0000"' in depleted.body.replace(" ", "")
    chain = CreditTransaction.objects.filter(user=user, transaction_type="usage").order_by("created_at", "id")
    afters = [row.credits_after for row in chain]
    assert afters == sorted(afters, reverse=True)
    assert afters[-1] == Decimal("0")
    assert all(row.credits_before - row.credits_after == -row.amount for row in chain)


def test_one_key_raced_from_eight_threads_debits_once_and_all_get_the_same_bytes(known_key, user):
    raw_key = known_key.raw_key

    def send(_index):
        response = client_with(raw_key).post(
            USAGE, {"service": "embedding", "units": 1}, format="json", HTTP_IDEMPOTENCY_KEY="raced"
        )
        return response.status_code, response.content

    answers = run_in_threads(8, send)

    assert {status for status, _ in answers} == {201}
    assert len({content for _, content in answers}) == 1
    assert CreditTransaction.objects.filter(user=user, idempotency_key="raced").count() == 1
    assert balance_of(user) == Decimal("8.9")  # 10, the warm-up's 1, then this debit's 0.1 once
