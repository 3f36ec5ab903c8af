import datetime
from decimal import Decimal

import factory
from django.utils import timezone

from billing import rollups
from billing.models import (
    CreditAccount,
    CreditAllocation,
    CreditPool,
    CreditTransaction,
    Invoice,
    Plan,
    Subscription,
)
from orgs.tests.factories import OrganizationFactory, UserFactory


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"plan-{n}")
    name = factory.LazyAttribute(lambda plan: plan.code.title())
    price_minor = 4900
    currency = "USD"
    interval = Plan.Interval.MONTH
    included_credits = Decimal("10000")


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    org = factory.SubFactory(OrganizationFactory)
    plan = factory.SubFactory(PlanFactory)
    status = Subscription.Status.ACTIVE
    current_period_start = factory.LazyFunction(lambda: timezone.now() - datetime.timedelta(days=10))
    current_period_end = factory.LazyAttribute(lambda sub: sub.current_period_start + datetime.timedelta(days=30))


class CreditPoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CreditPool

    org = factory.SubFactory(OrganizationFactory)
    total_credits = Decimal("10000")
    allocated_credits = Decimal("0")
    used_credits = Decimal("0")


class CreditAllocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CreditAllocation

    pool = factory.SubFactory(CreditPoolFactory)
    user = factory.SubFactory(UserFactory)
    allocated_credits = Decimal("100")
    used_credits = Decimal("0")


class CreditAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CreditAccount
        django_get_or_create = ("user",)

    user = factory.SubFactory(UserFactory)
    balance = Decimal("0")


class CreditTransactionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CreditTransaction

    user = factory.SubFactory(UserFactory)
    transaction_type = CreditTransaction.Type.PURCHASE
    amount = Decimal("100")
    credits_before = Decimal("0")
    credits_after = factory.LazyAttribute(lambda txn: txn.credits_before + txn.amount)
    description = "test row"


class InvoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invoice

    source = Invoice.Source.CREDIT_PURCHASE
    user = factory.SubFactory(UserFactory)
    amount_minor = 1000
    currency = "USD"
    credits = Decimal("1000")
    status = Invoice.Status.PAID
    paid_at = factory.LazyFunction(timezone.now)


def paid_subscription_invoice(subscription, *, amount_minor: int) -> None:
    """A subscription period charged now, with the revenue rollup the renewal keeps."""
    now = timezone.now()
    InvoiceFactory(
        source=Invoice.Source.SUBSCRIPTION,
        user=None,
        org=subscription.org,
        subscription=subscription,
        amount_minor=amount_minor,
        credits=Decimal(0),
        period_start=now,
        period_end=now + datetime.timedelta(days=30),
        paid_at=now,
    )
    rollups.revenue_recorded(
        day=now.date(),
        currency="USD",
        source=Invoice.Source.SUBSCRIPTION,
        amount_minor=amount_minor,
        shard_key=subscription.org_id,
    )
