"""Every invariant a constraint can hold refuses a bad row in PostgreSQL itself."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import (
    CreditAccount,
    CreditFlowDaily,
    CreditPackage,
    CreditTransaction,
    Invoice,
    OrgUsageDaily,
    RevenueDaily,
    Subscription,
    UsageDaily,
)
from billing.tests.factories import (
    CreditAccountFactory,
    CreditAllocationFactory,
    CreditPoolFactory,
    CreditTransactionFactory,
    InvoiceFactory,
    PlanFactory,
    SubscriptionFactory,
)
from orgs.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def refused(make_row) -> bool:
    try:
        with transaction.atomic():
            make_row()
    except IntegrityError:
        return True
    return False


def refusing_constraint(make_row) -> str | None:
    """The constraint that refused the row, so a test names the one it means, not any it happens to break."""
    try:
        with transaction.atomic():
            make_row()
    except IntegrityError as exc:
        return exc.__cause__.diag.constraint_name
    return None


def test_balance_cannot_go_negative():
    account = CreditAccountFactory(balance=Decimal("5"))

    assert refused(lambda: CreditAccount.objects.filter(pk=account.pk).update(balance=Decimal("-0.0001")))
    account.refresh_from_db()
    assert account.balance == Decimal("5")


@pytest.mark.parametrize(
    ("total", "allocated", "used"),
    [
        ("100", "101", "0"),  # allocated beyond the pool
        ("100", "50", "51"),  # used beyond what was allocated
        ("100", "50", "-1"),  # negative use
    ],
)
def test_pool_counters_stay_ordered(total, allocated, used):
    assert refused(
        lambda: CreditPoolFactory(
            total_credits=Decimal(total), allocated_credits=Decimal(allocated), used_credits=Decimal(used)
        )
    )


def test_pool_available_is_derived_from_total_and_allocated():
    pool = CreditPoolFactory(total_credits=Decimal("100"), allocated_credits=Decimal("30"))
    pool.refresh_from_db()
    assert pool.available_credits == Decimal("70")


def test_allocation_use_cannot_exceed_allocation():
    assert refused(lambda: CreditAllocationFactory(allocated_credits=Decimal("10"), used_credits=Decimal("10.0001")))
    assert not refused(lambda: CreditAllocationFactory(allocated_credits=Decimal("10"), used_credits=Decimal("10")))


def test_one_allocation_per_user_and_pool():
    allocation = CreditAllocationFactory()
    assert refused(lambda: CreditAllocationFactory(pool=allocation.pool, user=allocation.user))


@pytest.mark.parametrize("second_status", ["active", "trialing"])
def test_at_most_one_live_subscription_per_org(second_status):
    subscription = SubscriptionFactory(status=Subscription.Status.TRIALING)
    assert refused(lambda: SubscriptionFactory(org=subscription.org, status=second_status))


def test_ended_subscriptions_may_pile_up_beside_a_live_one():
    org = OrganizationFactory()
    SubscriptionFactory(org=org, status=Subscription.Status.ACTIVE)
    SubscriptionFactory(org=org, status=Subscription.Status.CANCELED)
    SubscriptionFactory(org=org, status=Subscription.Status.CANCELED)
    assert Subscription.objects.filter(org=org).count() == 3


def test_subscription_period_must_move_forward():
    now = timezone.now()
    assert refused(lambda: SubscriptionFactory(current_period_start=now, current_period_end=now))


def test_unknown_status_is_refused():
    assert refused(lambda: SubscriptionFactory(status="paused"))


def test_idempotency_key_is_unique_per_user():
    first = CreditTransactionFactory(idempotency_key="order-1")
    assert refused(lambda: CreditTransactionFactory(user=first.user, idempotency_key="order-1"))
    # The same key for another user, and many rows with no key, are fine.
    assert not refused(lambda: CreditTransactionFactory(idempotency_key="order-1"))
    assert not refused(lambda: CreditTransactionFactory(user=first.user, idempotency_key=None))
    assert not refused(lambda: CreditTransactionFactory(user=first.user, idempotency_key=None))


def test_transaction_after_must_equal_before_plus_amount():
    assert refused(
        lambda: CreditTransactionFactory(amount=Decimal("10"), credits_before=Decimal("5"), credits_after=Decimal("16"))
    )


def test_transaction_cannot_leave_credits_negative():
    assert refused(
        lambda: CreditTransactionFactory(
            transaction_type=CreditTransaction.Type.USAGE,
            amount=Decimal("-10"),
            credits_before=Decimal("5"),
            credits_after=Decimal("-5"),
        )
    )


def test_transaction_type_must_be_known():
    assert refused(lambda: CreditTransactionFactory(transaction_type="gift"))


def test_one_membership_per_user_and_org():
    membership = MembershipFactory()
    assert refused(lambda: MembershipFactory(user=membership.user, org=membership.org))


def test_membership_role_must_be_known():
    assert refused(lambda: MembershipFactory(role="guest"))


def test_user_tier_must_be_known():
    assert refused(lambda: UserFactory(tier="platinum"))


def test_plan_price_cannot_be_negative():
    assert refused(lambda: PlanFactory(price_minor=-1))


def test_invoice_amount_cannot_be_negative():
    assert refused(lambda: InvoiceFactory(amount_minor=-1))


def test_paid_invoice_needs_paid_at_and_unpaid_must_not_have_one():
    assert refused(lambda: InvoiceFactory(status=Invoice.Status.PAID, paid_at=None))
    assert refused(lambda: InvoiceFactory(status=Invoice.Status.OPEN, paid_at=timezone.now()))


def test_subscription_invoice_needs_its_subscription_and_period():
    assert refused(lambda: InvoiceFactory(source=Invoice.Source.SUBSCRIPTION, user=None, subscription=None))


def test_one_invoice_per_subscription_period():
    subscription = SubscriptionFactory()
    make_invoice = lambda: InvoiceFactory(  # noqa: E731
        source=Invoice.Source.SUBSCRIPTION,
        user=None,
        org=subscription.org,
        subscription=subscription,
        period_start=subscription.current_period_start,
        period_end=subscription.current_period_end,
        credits=Decimal("0"),
    )
    assert not refused(make_invoice)
    assert refused(make_invoice)


def test_one_pool_per_org():
    pool = CreditPoolFactory()
    assert refusing_constraint(lambda: CreditPoolFactory(org=pool.org)) == "idx_credit_pools_org"


def test_invoice_status_must_be_known():
    assert refusing_constraint(lambda: InvoiceFactory(status="refunded", paid_at=None)) == "invoice_status_known"
    assert not refused(lambda: InvoiceFactory(status=Invoice.Status.VOID, paid_at=None))


def revenue_day(**values) -> RevenueDaily:
    row = {"day": timezone.now().date(), "currency": "USD", "source": RevenueDaily.Source.SUBSCRIPTION, **values}
    return RevenueDaily.objects.create(**{"amount_minor": 4900, "invoices": 1, **row})


def test_revenue_source_must_be_known():
    assert refusing_constraint(lambda: revenue_day(source="donation")) == "revenue_daily_source_known"
    assert not refused(lambda: revenue_day(source=RevenueDaily.Source.CREDIT_PURCHASE))


def flow_day(**flows) -> CreditFlowDaily:
    return CreditFlowDaily.objects.create(day=timezone.now().date(), **flows)


def usage_day(**counters) -> UsageDaily:
    return UsageDaily.objects.create(user=UserFactory(), day=timezone.now().date(), service="embedding", **counters)


@pytest.mark.parametrize(
    ("constraint", "make_row"),
    [
        ("revenue_daily_counters_non_negative", lambda: revenue_day(amount_minor=-1)),
        ("revenue_daily_counters_non_negative", lambda: revenue_day(invoices=-1)),
        ("credit_flow_daily_flows_non_negative", lambda: flow_day(purchased=Decimal("-0.0001"))),
        ("credit_flow_daily_flows_non_negative", lambda: flow_day(consumed=Decimal("-1"))),
        ("credit_flow_daily_flows_non_negative", lambda: flow_day(refreshed=Decimal("-1"))),
        (
            "org_usage_daily_credits_non_negative",
            lambda: OrgUsageDaily.objects.create(org=OrganizationFactory(), day=timezone.now().date(), credits=-1),
        ),
        ("usage_daily_units_non_negative", lambda: usage_day(units=-1)),
        ("usage_daily_events_non_negative", lambda: usage_day(events=-1)),
    ],
    ids=["revenue", "invoices", "purchased", "consumed", "refreshed", "org-usage", "units", "events"],
)
def test_rollup_counters_cannot_go_negative(constraint, make_row):
    assert refusing_constraint(make_row) == constraint


def test_granted_credits_are_signed():
    """Staff corrections take credits back: a day's grants may sum below zero."""
    assert not refused(lambda: flow_day(granted=Decimal("-25")))


@pytest.mark.parametrize("currency", ["usd", "US", "U$D", "12A", ""])
@pytest.mark.parametrize(
    ("constraint", "make_row"),
    [
        ("plan_currency_iso_4217", lambda currency: PlanFactory(currency=currency)),
        (
            "credit_package_currency_iso_4217",
            lambda currency: CreditPackage.objects.create(
                code="bad-currency", name="Bad", credits=Decimal("10"), price_minor=100, currency=currency
            ),
        ),
        ("invoice_currency_iso_4217", lambda currency: InvoiceFactory(currency=currency)),
        ("revenue_daily_currency_iso_4217", lambda currency: revenue_day(currency=currency)),
    ],
    ids=["plan", "package", "invoice", "revenue"],
)
def test_currency_is_an_iso_4217_code(constraint, make_row, currency):
    assert refusing_constraint(lambda: make_row(currency)) == constraint
    assert not refused(lambda: make_row("EUR"))
