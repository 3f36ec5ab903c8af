"""Races with real threads on PostgreSQL: no overspend, no double charge."""

from decimal import Decimal

import pytest
from django.db.models import Sum

from billing.models import CreditAccount, CreditAllocation, CreditPool, CreditTransaction, Invoice
from billing.services import credits_purchase
from billing.tests.factories import CreditAllocationFactory, CreditPoolFactory
from ops_center.tests.api_support import SchemaCheckedClient
from ops_center.tests.threads import run_in_threads
from orgs.tests.factories import MembershipFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_catalog")]


def assert_ledger_chains(user, org_id=None):
    rows = list(CreditTransaction.objects.filter(user=user, org_id=org_id).order_by("created_at", "id"))
    expected_before = Decimal(0) if org_id is None else rows[0].credits_before
    for row in rows:
        assert row.credits_before == expected_before
        assert row.credits_after == row.credits_before + row.amount
        expected_before = row.credits_after
    return rows


def test_fifty_concurrent_usages_against_a_balance_for_ten(user, settings):
    # given: 100 credits, and each request costs 10
    credits_purchase(user=user, credits=Decimal("100"))
    clients = [SchemaCheckedClient().as_user(user) for _ in range(50)]

    # when: 50 requests race
    responses = run_in_threads(
        50,
        lambda i: clients[i].post(
            "/api/v1/credits/usage", {"service": "embedding", "units": 1, "credits": "10"}, format="json"
        ),
    )

    # then: exactly 10 succeed, the rest get 402, and the books balance
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * 10 + [402] * 40
    assert CreditAccount.objects.get(user=user).balance == Decimal("0")
    rows = assert_ledger_chains(user)
    assert len(rows) == 11
    assert sum(row.amount for row in rows) == Decimal("0")
    assert rows[-1].credits_after == Decimal("0")


def test_concurrent_usage_never_overdraws_an_allocation_or_its_pool(user):
    pool = CreditPoolFactory(total_credits=Decimal("500"), allocated_credits=Decimal("35"))
    CreditAllocationFactory(pool=pool, user=user, allocated_credits=Decimal("35"))
    MembershipFactory(user=user, org=pool.org)
    clients = [SchemaCheckedClient().as_user(user) for _ in range(20)]
    body = {"service": "embedding", "units": 1, "credits": "5", "org_id": pool.org_id}

    responses = run_in_threads(20, lambda i: clients[i].post("/api/v1/credits/usage", body, format="json"))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * 7 + [402] * 13, [response.content for response in responses]
    allocation = CreditAllocation.objects.get(pool=pool, user=user)
    assert allocation.used_credits == Decimal("35")
    assert CreditPool.objects.get(pk=pool.pk).used_credits == Decimal("35")
    usage = CreditTransaction.objects.filter(user=user, org=pool.org).aggregate(total=Sum("amount"))["total"]
    assert usage == Decimal("-35")


def test_one_idempotency_key_sent_twenty_times_at_once_charges_once(user):
    clients = [SchemaCheckedClient().as_user(user) for _ in range(20)]

    responses = run_in_threads(
        20,
        lambda i: clients[i].post(
            "/api/v1/credits/purchases", {"package": "credits-1k"}, format="json", HTTP_IDEMPOTENCY_KEY="order-7"
        ),
    )

    assert {response.status_code for response in responses} == {201}, responses[0].content
    assert len({response.content for response in responses}) == 1, "every replay returns the first response"
    assert Invoice.objects.filter(user=user).count() == 1
    assert CreditTransaction.objects.filter(user=user).count() == 1
    assert CreditAccount.objects.get(user=user).balance == Decimal("1000")
