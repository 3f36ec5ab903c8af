"""Each billing event is written once per change, in the change's transaction, to the subscribed endpoints."""

import datetime
import json
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from billing import alerts
from billing.cycles import pool_refresh, subscription_cancel, subscription_renew
from billing.services import credits_adjust, credits_consume, credits_purchase
from billing.tests.factories import CreditAllocationFactory, CreditPoolFactory, PlanFactory, SubscriptionFactory
from ops_center.tests.api_support import SchemaCheckedClient
from ops_center.tests.threads import run_in_threads
from orgs.tests.factories import MembershipFactory, UserFactory
from webhooks.models import EventType, WebhookDelivery, WebhookEvent
from webhooks.tests.factories import WebhookEndpointFactory

pytestmark = pytest.mark.django_db


def payloads(type: str) -> list[dict]:
    return [json.loads(event.body) for event in WebhookEvent.objects.filter(type=type).order_by("id")]


def spend(user, credits: str, org_id=None):
    return credits_consume(user=user, service="embedding", units=1, credits=Decimal(credits), org_id=org_id)


@pytest.fixture
def endpoint(user):
    return WebhookEndpointFactory(user=user)


def test_a_debit_crossing_the_threshold_emits_balance_low_once_per_crossing(user, endpoint):
    # given: 100 credits, alert at 50
    credits_purchase(user=user, credits=Decimal("100"))
    alerts.account_alerts_set(user_id=user.pk, low_balance_threshold=Decimal("50"))

    # when: debits above, across and below the threshold
    spend(user, "30")  # 70: above
    crossing = spend(user, "25")  # 45: crosses
    spend(user, "5")  # 40: still below, no second alert

    # then: one balance_low, with the crossing's numbers
    [payload] = payloads(EventType.CREDITS_BALANCE_LOW)
    event = WebhookEvent.objects.get(type=EventType.CREDITS_BALANCE_LOW)
    assert payload["id"] == event.uid
    assert payload["id"].startswith("evt_")
    assert payload["type"] == "credits.balance_low"
    assert payload["created_at"].endswith("Z")
    assert (payload["user_id"], payload["org_id"]) == (user.pk, None)
    assert payload["data"] == {
        "amount": "-25.0000",
        "balance_before": "70.0000",
        "balance_after": "45.0000",
        "threshold": "50.0000",
        "transaction_id": crossing.transaction.id,
    }
    assert list(WebhookDelivery.objects.filter(event=event).values_list("endpoint_id", "status")) == [
        (endpoint.pk, "pending")
    ]

    # when: topped up above the threshold and crossing again: a second alert
    credits_purchase(user=user, credits=Decimal("20"))  # 60
    spend(user, "10")  # 50: at the threshold counts
    assert [p["data"]["balance_after"] for p in payloads(EventType.CREDITS_BALANCE_LOW)] == ["45.0000", "50.0000"]


def test_reaching_zero_emits_depleted_once_even_without_a_threshold(user, endpoint):
    credits_purchase(user=user, credits=Decimal("10"))

    spend(user, "4")
    last = spend(user, "6")

    [payload] = payloads(EventType.CREDITS_DEPLETED)
    assert payload["data"]["balance_after"] == "0.0000"
    assert payload["data"]["threshold"] is None
    assert payload["data"]["transaction_id"] == last.transaction.id
    assert payloads(EventType.CREDITS_BALANCE_LOW) == []


def test_a_debit_without_threshold_or_endpoint_makes_no_extra_query(user):
    credits_purchase(user=user, credits=Decimal("100"))
    spend(user, "1")  # the pricing rule is cached from here on

    with CaptureQueriesContext(connection) as plain:
        spend(user, "1")
    alerts.account_alerts_set(user_id=user.pk, low_balance_threshold=Decimal("10"))
    with CaptureQueriesContext(connection) as with_threshold:
        spend(user, "1")  # 97: no crossing

    assert not [query for query in plain.captured_queries if "webhook" in query["sql"]]
    assert len(with_threshold.captured_queries) == len(plain.captured_queries)


def test_a_crossing_with_no_endpoint_costs_one_read_and_writes_nothing(user):
    credits_purchase(user=user, credits=Decimal("100"))
    alerts.account_alerts_set(user_id=user.pk, low_balance_threshold=Decimal("95"))
    spend(user, "1")

    with CaptureQueriesContext(connection) as queries:
        spend(user, "10")  # 89: crosses 95

    webhook_queries = [query["sql"] for query in queries.captured_queries if "webhook" in query["sql"]]
    assert len(webhook_queries) == 1
    assert webhook_queries[0].startswith("SELECT")
    assert not WebhookEvent.objects.exists()


def test_a_rolled_back_debit_emits_nothing(user, endpoint):
    credits_purchase(user=user, credits=Decimal("100"))
    alerts.account_alerts_set(user_id=user.pk, low_balance_threshold=Decimal("50"))
    before = WebhookEvent.objects.count()

    def debit_then_fail():
        with transaction.atomic():
            spend(user, "100")  # crosses the threshold and reaches zero
            assert WebhookEvent.objects.filter(type=EventType.CREDITS_DEPLETED).exists()
            raise RuntimeError("the caller's transaction fails after the debit")

    with pytest.raises(RuntimeError):
        debit_then_fail()

    assert WebhookEvent.objects.count() == before
    assert not WebhookDelivery.objects.filter(event__type__in=["credits.balance_low", "credits.depleted"]).exists()


def test_a_rolled_back_purchase_emits_nothing(user, endpoint):
    def purchase_then_fail():
        with transaction.atomic():
            credits_purchase(user=user, credits=Decimal("10"))
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        purchase_then_fail()

    assert not WebhookEvent.objects.exists()


def test_purchase_and_staff_grant_events(user, endpoint):
    staff = UserFactory(is_staff=True)

    bought = credits_purchase(user=user, credits=Decimal("100"))
    granted = credits_adjust(actor=staff, user=user, amount=Decimal("2.5"), reason="goodwill")

    [purchase] = payloads(EventType.CREDITS_PURCHASED)
    assert purchase["data"] == {
        "amount": "100.0000",
        "balance_after": "100.0000",
        "transaction_id": bought.transaction.id,
        "invoice_id": bought.invoice.pk,
        "package": None,
    }
    [grant] = payloads(EventType.CREDITS_GRANTED)
    assert grant["data"] == {
        "amount": "2.5000",
        "balance_after": "102.5000",
        "transaction_id": granted.transaction.id,
        "reason": "goodwill",
    }


def test_a_negative_adjustment_can_cross_the_threshold(user, endpoint):
    credits_purchase(user=user, credits=Decimal("100"))
    alerts.account_alerts_set(user_id=user.pk, low_balance_threshold=Decimal("50"))

    credits_adjust(actor=UserFactory(is_staff=True), user=user, amount=Decimal("-60"), reason="correction")

    [payload] = payloads(EventType.CREDITS_BALANCE_LOW)
    assert payload["data"]["balance_after"] == "40.0000"


def test_an_endpoint_receives_only_its_events_and_only_when_enabled(user):
    only_purchases = WebhookEndpointFactory(user=user, events=["credits.purchased"])
    only_low = WebhookEndpointFactory(user=user, events=["credits.balance_low"])
    WebhookEndpointFactory(user=user, is_enabled=False, disabled_reason="manual", disabled_at=only_low.created_at)
    WebhookEndpointFactory()  # another user's

    credits_purchase(user=user, credits=Decimal("10"))

    assert list(WebhookDelivery.objects.values_list("endpoint_id", flat=True)) == [only_purchases.pk]


class TestOrgEvents:
    @pytest.fixture
    def org_setup(self):
        pool = CreditPoolFactory(total_credits=Decimal("1000"), allocated_credits=Decimal("100"))
        member = UserFactory()
        MembershipFactory(user=member, org=pool.org)
        CreditAllocationFactory(pool=pool, user=member, allocated_credits=Decimal("100"))
        org_endpoint = WebhookEndpointFactory(user=None, org=pool.org)
        member_endpoint = WebhookEndpointFactory(user=member)
        return pool, member, org_endpoint, member_endpoint

    def test_allocation_and_pool_crossings(self, org_setup):
        pool, member, org_endpoint, member_endpoint = org_setup
        alerts.pool_alerts_set(
            org_id=pool.org_id, low_pool_threshold=Decimal("950"), low_allocation_threshold=Decimal("30")
        )

        spend(member, "40", org_id=pool.org_id)  # allocation 60, pool 960
        crossing = spend(member, "35", org_id=pool.org_id)  # allocation 25 (low), pool 925 (low)
        spend(member, "5", org_id=pool.org_id)  # below both: nothing new
        last = spend(member, "20", org_id=pool.org_id)  # allocation 0: depleted

        [low] = payloads(EventType.ALLOCATION_LOW)
        assert (low["user_id"], low["org_id"]) == (member.pk, pool.org_id)
        assert low["data"] == {
            "amount": "-35.0000",
            "balance_before": "60.0000",
            "balance_after": "25.0000",
            "threshold": "30.0000",
            "transaction_id": crossing.transaction.id,
        }
        [pool_low] = payloads(EventType.CREDIT_POOL_LOW)
        assert (pool_low["user_id"], pool_low["org_id"]) == (None, pool.org_id)
        assert pool_low["data"]["balance_after"] == "925.0000"
        assert pool_low["data"]["threshold"] == "950.0000"
        assert pool_low["data"]["member_user_id"] == member.pk
        [depleted] = payloads(EventType.ALLOCATION_DEPLETED)
        assert depleted["data"]["transaction_id"] == last.transaction.id
        assert payloads(EventType.CREDIT_POOL_DEPLETED) == []
        # allocation events reach the org's and the member's endpoints; pool events the org's only
        low_event = WebhookEvent.objects.get(type=EventType.ALLOCATION_LOW)
        assert set(low_event.deliveries.values_list("endpoint_id", flat=True)) == {org_endpoint.pk, member_endpoint.pk}
        pool_event = WebhookEvent.objects.get(type=EventType.CREDIT_POOL_LOW)
        assert list(pool_event.deliveries.values_list("endpoint_id", flat=True)) == [org_endpoint.pk]

    def test_pool_depleted_when_its_last_credits_are_used(self):
        pool = CreditPoolFactory(total_credits=Decimal("10"), allocated_credits=Decimal("10"))
        member = UserFactory()
        MembershipFactory(user=member, org=pool.org)
        CreditAllocationFactory(pool=pool, user=member, allocated_credits=Decimal("10"))
        WebhookEndpointFactory(user=None, org=pool.org)

        spend(member, "10", org_id=pool.org_id)

        [payload] = payloads(EventType.CREDIT_POOL_DEPLETED)
        assert payload["data"]["balance_after"] == "0.0000"


class TestSubscriptionEvents:
    @pytest.fixture
    def subscription(self, settings):
        settings.PAYMENT_GATEWAY = "billing.payments.InstantSettlementGateway"
        subscription = SubscriptionFactory(plan=PlanFactory(code="team", included_credits=Decimal("500")))
        MembershipFactory(org=subscription.org, role="owner")
        WebhookEndpointFactory(user=None, org=subscription.org)
        return subscription

    def test_renewed(self, subscription):
        invoice = subscription_renew(subscription=subscription)

        [payload] = payloads(EventType.SUBSCRIPTION_RENEWED)
        assert payload["org_id"] == subscription.org_id
        assert payload["data"]["subscription_id"] == subscription.pk
        assert payload["data"]["invoice_id"] == invoice.pk
        assert payload["data"]["status"] == "active"
        assert payload["data"]["current_period_end"] == subscription.current_period_end.isoformat()

    def test_past_due(self, subscription, settings):
        settings.PAYMENT_GATEWAY = "billing.tests.test_billing_cycles.DecliningGateway"

        subscription_renew(subscription=subscription)

        [payload] = payloads(EventType.SUBSCRIPTION_PAST_DUE)
        assert payload["data"]["status"] == "past_due"
        assert payload["data"]["invoice_status"] == "open"
        assert payloads(EventType.SUBSCRIPTION_RENEWED) == []

    def test_canceled(self, subscription):
        subscription_cancel(subscription=subscription)

        [payload] = payloads(EventType.SUBSCRIPTION_CANCELED)
        assert payload["data"]["status"] == "canceled"

    def test_pool_refreshed_once_per_period(self, subscription):
        start = subscription.current_period_start
        end = start + datetime.timedelta(days=30)

        row = pool_refresh(
            org=subscription.org, plan_code="team", period_start=start, period_end=end, credits=Decimal("500")
        )
        again = pool_refresh(
            org=subscription.org, plan_code="team", period_start=start, period_end=end, credits=Decimal("500")
        )

        assert again is None
        [payload] = payloads(EventType.CREDIT_POOL_REFRESHED)
        assert payload["data"]["amount"] == "500.0000"
        assert payload["data"]["transaction_id"] == row.id
        assert payload["data"]["plan"] == "team"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_catalog")
def test_fifty_threads_crossing_the_threshold_emit_exactly_one_balance_low():
    # given: 100 credits, alert at 50, an endpoint; 50 debits of 2 take the balance to 0
    user = UserFactory()
    credits_purchase(user=user, credits=Decimal("100"))
    alerts.account_alerts_set(user_id=user.pk, low_balance_threshold=Decimal("50"))
    endpoint = WebhookEndpointFactory(user=user)
    clients = [SchemaCheckedClient().as_user(user) for _ in range(50)]

    # when: all 50 race
    responses = run_in_threads(
        50,
        lambda i: clients[i].post(
            "/api/v1/credits/usage", {"service": "embedding", "units": 1, "credits": "2"}, format="json"
        ),
    )

    # then: every debit went through, one crossed 50 and one reached 0
    assert [response.status_code for response in responses] == [201] * 50
    [low] = payloads(EventType.CREDITS_BALANCE_LOW)
    assert (low["data"]["balance_before"], low["data"]["balance_after"]) == ("52.0000", "50.0000")
    [depleted] = payloads(EventType.CREDITS_DEPLETED)
    assert (depleted["data"]["balance_before"], depleted["data"]["balance_after"]) == ("2.0000", "0.0000")
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 2
