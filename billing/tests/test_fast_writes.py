"""Writes answered before DRF (ops_center.api.fast_writes): the ordinary path's answers and effects.

Which path answered is read off the real Redis: the fast path reads the
caller's principal with an MGET, the ordinary path with a GET. A worker learns
whose key it is from the key's first request, which the ordinary path answers.
"""

import time
from decimal import Decimal

import pytest
from django.core.cache import cache as django_cache

from billing.models import CreditAccount, CreditTransaction, Invoice, PricingRule
from billing.services import credits_purchase
from ops_center.api import fast_reads
from ops_center.api.throttling import WriteRateThrottle
from ops_center.models import IdempotencyRecord
from ops_center.tests.api_support import SchemaCheckedClient, assert_error, redis_calls
from ops_center.tests.threads import run_in_threads
from orgs.models import ApiKey
from orgs.services import api_key_revoke

pytestmark = pytest.mark.django_db

USAGE = "/api/v1/credits/usage"
PURCHASES = "/api/v1/credits/purchases"
DEBIT = {"service": "embedding", "units": 1, "credits": "0.5"}
COMPARED_HEADERS = ("Content-Type", "Allow", "Vary", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options")


def post(client, path, body, **headers):
    if isinstance(body, str):  # JSON text as sent, for what the test client would not encode
        return client.post(path, body, content_type="application/json", **headers)
    return client.post(path, body, format="json", **headers)


def assert_principal_read_fast_then_ordinary(
    fast_calls: dict[str, int], ordinary_calls: dict[str, int], *, read_ahead: int = 0
) -> None:
    """Both paths send the same commands, but for the principal's read: in the fast path's MGET, or a GET.

    ``read_ahead``: the ordinary path's cache reads (an MGET each) that the fast path's MGET took along.
    """
    assert fast_calls["mget"] == ordinary_calls.get("mget", 0) + 1 - read_ahead, (fast_calls, ordinary_calls)
    assert fast_calls.get("get", 0) == ordinary_calls["get"] - 1, (fast_calls, ordinary_calls)
    rest = {name: count for name, count in fast_calls.items() if name not in ("get", "mget")}
    assert rest == {name: count for name, count in ordinary_calls.items() if name not in ("get", "mget")}


def client_with(raw_key: str) -> SchemaCheckedClient:
    """A client of its own for each thread, sending the same API key."""
    client = SchemaCheckedClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def balance_of(user) -> Decimal:
    return CreditAccount.objects.get(user=user).balance


@pytest.fixture
def funded(user):
    credits_purchase(user=user, credits=Decimal("10"))
    return user


@pytest.fixture
def known_key(user_api, funded):
    """The key's first write, answered the ordinary way, teaches this worker whose key it is."""
    assert post(user_api, USAGE, DEBIT).status_code == 201
    return user_api


@pytest.mark.parametrize(
    ("path", "body", "read_ahead"),
    [(USAGE, DEBIT, 1), (PURCHASES, {"credits": "3"}, 0), (PURCHASES, {"package": "credits-1k"}, 0)],
)
def test_a_known_key_writes_the_fast_way_and_gets_the_ordinary_answer(known_key, funded, path, body, read_ahead):
    responses = []
    calls = redis_calls(lambda: responses.append(post(known_key, path, body)))
    fast_reads.forget_key_owners()  # now the ordinary path must answer
    ordinary_calls = redis_calls(lambda: responses.append(post(known_key, path, body)))
    fast, ordinary = responses

    assert_principal_read_fast_then_ordinary(calls, ordinary_calls, read_ahead=read_ahead)
    assert fast.status_code == ordinary.status_code == 201
    for header in COMPARED_HEADERS:
        assert fast.get(header) == ordinary.get(header), header
    fast_body, ordinary_body = fast.json(), ordinary.json()
    assert set(fast_body) == set(ordinary_body)
    assert set(fast_body["transaction"]) == set(ordinary_body["transaction"])
    # each answer is its own write, one after the other, by the same amount
    moved = Decimal(fast_body["transaction"]["amount"])
    assert Decimal(fast_body["balance"]) == Decimal(fast_body["transaction"]["credits_before"]) + moved
    assert Decimal(ordinary_body["transaction"]["credits_before"]) == Decimal(fast_body["balance"])
    assert Decimal(ordinary_body["balance"]) == Decimal(fast_body["balance"]) + moved
    assert balance_of(funded) == Decimal(ordinary_body["balance"])


def test_a_fast_purchase_writes_its_invoice_paid(known_key, funded):
    response = post(known_key, PURCHASES, {"credits": "3"})

    assert response.status_code == 201
    invoice = Invoice.objects.get(pk=response.json()["invoice_id"])
    assert (invoice.user_id, invoice.status, invoice.credits) == (funded.pk, Invoice.Status.PAID, Decimal("3"))


def test_a_key_sent_again_replays_the_fast_answer_and_writes_once(known_key, funded):
    first = post(known_key, USAGE, DEBIT, HTTP_IDEMPOTENCY_KEY="meter-1")
    replay = post(known_key, USAGE, DEBIT, HTTP_IDEMPOTENCY_KEY="meter-1")
    reused = post(known_key, USAGE, {**DEBIT, "units": 2}, HTTP_IDEMPOTENCY_KEY="meter-1")

    assert (first.status_code, replay.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in first
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert_error(reused, 422, "idempotency_key_reused")
    assert CreditTransaction.objects.filter(user=funded, idempotency_key="meter-1").count() == 1
    assert balance_of(funded) == Decimal("9.0")  # the warm-up debit and this one


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({**DEBIT, "units": 0}, {}, 400, "validation_error"),
        ('{"service": "embedding", "units": 1, "credits": 0.5}', {}, 400, "validation_error"),
        ('{"service": "embedding", "units": true}', {}, 400, "validation_error"),
        ('{"service": "embedding", "units": 1, "org_id": null}', {}, 400, "validation_error"),
        ({**DEBIT, "service": "no-such-service"}, {}, 400, "unknown_service"),
        ({**DEBIT, "credits": "50"}, {}, 402, "insufficient_credits"),
        ({**DEBIT, "credits": "50"}, {"HTTP_IDEMPOTENCY_KEY": "short"}, 402, "insufficient_credits"),
        (DEBIT, {"HTTP_IDEMPOTENCY_KEY": "tab\there"}, 400, "invalid_idempotency_key"),
    ],
)
def test_a_refused_write_gets_the_ordinary_refusal_and_writes_nothing(known_key, funded, body, headers, status, code):
    before = (balance_of(funded), CreditTransaction.objects.count(), IdempotencyRecord.objects.count())

    assert_error(post(known_key, USAGE, body, **headers), status, code)

    assert (balance_of(funded), CreditTransaction.objects.count(), IdempotencyRecord.objects.count()) == before


def test_a_refusal_answered_fast_is_the_ordinary_refusal(known_key):
    responses = []
    calls = redis_calls(lambda: responses.append(post(known_key, USAGE, {**DEBIT, "credits": "50"})))
    fast_reads.forget_key_owners()
    ordinary_calls = redis_calls(lambda: responses.append(post(known_key, USAGE, {**DEBIT, "credits": "50"})))

    assert_principal_read_fast_then_ordinary(calls, ordinary_calls, read_ahead=1)
    fast, ordinary = responses
    assert fast.status_code == ordinary.status_code == 402
    assert fast.content == ordinary.content
    assert assert_error(fast, 402, "insufficient_credits")["details"]["shortfall"] == "40.5000"


def test_a_fast_debit_reads_its_pricing_rule_with_the_principal_in_one_round_trip(known_key, funded):
    calls = redis_calls(lambda: post(known_key, USAGE, DEBIT))

    # one MGET (the principal and the rule), and the throttle's pipeline (INCRBY, EXPIRE, the last window's GET);
    # the eviction waits for a commit, which this test's transaction never makes
    assert calls == {"mget": 1, "incrby": 1, "expire": 1, "get": 1}
    assert balance_of(funded) == Decimal("9.0")


@pytest.mark.django_db(transaction=True)
def test_a_new_price_applies_to_the_next_fast_debit(default_catalog, known_key, funded):
    rule = PricingRule.objects.get(service="embedding", is_active=True)
    rule.credits_per_unit = Decimal("0.25")
    rule.save()  # evicts the cached rule on commit

    response = post(known_key, USAGE, {"service": "embedding", "units": 2})

    assert response.status_code == 201
    assert response.json()["transaction"]["amount"] == "-0.5000"
    assert balance_of(funded) == Decimal("9.0")


def test_a_body_that_is_not_json_is_the_parsers_to_refuse(known_key, funded):
    response = known_key.post(USAGE, "service=embedding&units=1", content_type="application/x-www-form-urlencoded")

    assert_error(response, 415, "unsupported_media_type")
    assert balance_of(funded) == Decimal("9.5")


@pytest.mark.django_db(transaction=True)
def test_a_revoked_key_cannot_write_although_this_worker_remembers_its_owner(default_catalog, known_key, funded):
    api_key_revoke(api_key=ApiKey.objects.get(user=funded))

    assert_error(post(known_key, USAGE, DEBIT), 401, "authentication_failed")
    assert balance_of(funded) == Decimal("9.5")


def test_a_throttled_fast_write_is_counted_once(known_key, funded, monkeypatch):
    monkeypatch.setattr(WriteRateThrottle, "THROTTLE_RATES", {"writes": "3/min"})
    window = int(time.time() // 60)

    answers = [post(known_key, USAGE, DEBIT).status_code for _ in range(3)]

    assert answers == [201, 201, 429]  # the warm-up was the first of three
    minutes = (window - 1, window, window + 1)
    counted = sum(django_cache.get(f"throttle:writes:{funded.pk}:{minute}", 0) for minute in minutes)
    assert counted == 4  # the warm-up, the two debits and the refused attempt, each once
    assert balance_of(funded) == Decimal("8.5")


@pytest.mark.django_db(transaction=True)
def test_one_key_from_eight_threads_debits_once(default_catalog, known_key, funded):
    raw_key = known_key.raw_key

    def send(_index):
        response = post(client_with(raw_key), USAGE, DEBIT, HTTP_IDEMPOTENCY_KEY="raced")
        return response.status_code, response.json()

    answers = run_in_threads(8, send)

    assert {status for status, _ in answers} == {201}
    assert len({str(body) for _, body in answers}) == 1
    assert CreditTransaction.objects.filter(user=funded, idempotency_key="raced").count() == 1
    assert balance_of(funded) == Decimal("9.0")


@pytest.mark.django_db(transaction=True)
def test_eight_threads_never_spend_more_than_the_balance(user_api, user, default_catalog):
    credits_purchase(user=user, credits=Decimal("2"))
    assert post(user_api, USAGE, DEBIT).status_code == 201  # learns the key; 1.5 left: three more debits
    raw_key = user_api.raw_key

    def send(index):
        return post(client_with(raw_key), USAGE, DEBIT, HTTP_IDEMPOTENCY_KEY=f"spend-{index}").status_code

    answers = sorted(run_in_threads(8, send))

    assert answers == [201] * 3 + [402] * 5
    assert balance_of(user) == Decimal("0")
    assert CreditTransaction.objects.filter(user=user, transaction_type="usage").count() == 4
