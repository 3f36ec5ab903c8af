"""Plans, organization subscriptions and the invoices they produce."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from billing.money import CURRENCY_PATTERN, credit_field
from ops_center.db import LongNameIndex

LIVE_SUBSCRIPTION_STATUSES = ("active", "trialing")


# The choices below live at module level so each model's Meta can build its
# allowed-values check from them: a nested class is out of Meta's scope.
class PlanInterval(models.TextChoices):
    MONTH = "month", "Monthly"
    YEAR = "year", "Yearly"


class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"


class InvoiceSource(models.TextChoices):
    SUBSCRIPTION = "subscription", "Subscription"
    CREDIT_PURCHASE = "credit_purchase", "Credit purchase"


class InvoiceStatus(models.TextChoices):
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    VOID = "void", "Void"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"


class Plan(models.Model):
    Interval = PlanInterval

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    price_minor = models.BigIntegerField(help_text="Price per interval in minor units (cents).")
    currency = models.CharField(max_length=3, default="USD")
    interval = models.CharField(max_length=5, choices=Interval.choices, default=Interval.MONTH)
    included_credits = credit_field(help_text="Credits added to the org pool each period.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["price_minor", "code"]
        constraints = [
            models.CheckConstraint(condition=Q(price_minor__gte=0), name="plan_price_non_negative"),
            models.CheckConstraint(condition=Q(included_credits__gte=0), name="plan_included_credits_non_negative"),
            models.CheckConstraint(condition=Q(interval__in=PlanInterval.values), name="plan_interval_known"),
            models.CheckConstraint(condition=Q(currency__regex=CURRENCY_PATTERN), name="plan_currency_iso_4217"),
        ]

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    Status = SubscriptionStatus

    org = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="subscriptions")
    # The column is subscription_plan, not plan_id: hand-written SQL (the index and
    # billing-cycle tests, diagnostics reading idx_subscriptions_active's INCLUDE list)
    # uses that name.
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, db_column="subscription_plan", related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    cancel_at_period_end = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "subscriptions"
        constraints = [
            # Keyed on the expression org_id + 0 on purpose: a plain (org_id)
            # unique index would be the smallest index matching the hot lookup
            # and the planner would take it over idx_subscriptions_active, whose
            # INCLUDE list exists to answer that lookup.
            models.UniqueConstraint(
                F("org") + 0,
                condition=Q(status__in=LIVE_SUBSCRIPTION_STATUSES),
                name="uniq_subscription_live_per_org",
            ),
            models.CheckConstraint(
                condition=Q(current_period_end__gt=F("current_period_start")), name="subscription_period_ordered"
            ),
            models.CheckConstraint(condition=Q(status__in=SubscriptionStatus.values), name="subscription_status_known"),
        ]
        indexes = [
            # Active subscription lookup, the critical path: GET
            # /org-billing/organizations/{id}/subscription on a cache miss; the
            # INCLUDE list answers plan and period end from the index alone.
            LongNameIndex(
                fields=["org", "status"],
                condition=Q(status__in=LIVE_SUBSCRIPTION_STATUSES),
                include=["plan", "current_period_end"],
                name="idx_subscriptions_active",
            ),
            # Billing cycle processing: active subscriptions whose period has
            # ended, oldest first (process_billing_cycles).
            LongNameIndex(
                fields=["current_period_end", "status"],
                condition=Q(status="active"),
                name="idx_subscriptions_billing",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.org_id}: {self.plan_id} ({self.status})"


class Invoice(models.Model):
    """What was charged: a subscription period or a credit purchase."""

    Source = InvoiceSource
    Status = InvoiceStatus

    source = models.CharField(max_length=16, choices=Source.choices)
    org = models.ForeignKey("orgs.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # No single-column indexes on user and subscription: idx_invoices_user_created and
    # uniq_invoice_subscription_period lead with them and serve those lookups.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="invoices",
        db_index=False,
    )
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.PROTECT, related_name="invoices", db_index=False
    )
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="USD")
    credits = credit_field(help_text="Credits bought with a purchase; zero for subscription invoices.")
    status = models.CharField(max_length=13, choices=Status.choices, default=Status.OPEN)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_minor__gte=0), name="invoice_amount_non_negative"),
            models.CheckConstraint(condition=Q(credits__gte=0), name="invoice_credits_non_negative"),
            models.CheckConstraint(condition=Q(status__in=InvoiceStatus.values), name="invoice_status_known"),
            models.CheckConstraint(condition=Q(currency__regex=CURRENCY_PATTERN), name="invoice_currency_iso_4217"),
            models.CheckConstraint(
                condition=Q(status="paid", paid_at__isnull=False) | (~Q(status="paid") & Q(paid_at__isnull=True)),
                name="invoice_paid_iff_paid_at",
            ),
            models.CheckConstraint(
                condition=Q(source="subscription", subscription__isnull=False, period_start__isnull=False)
                | Q(source="credit_purchase", user__isnull=False),
                name="invoice_source_has_its_subject",
            ),
            # One invoice per subscription period: renewal jobs may run twice.
            models.UniqueConstraint(
                fields=["subscription", "period_start"],
                condition=Q(subscription__isnull=False),
                name="uniq_invoice_subscription_period",
            ),
        ]
        indexes = [
            # Revenue reports and rollup rebuilds: paid invoices by payment date.
            models.Index(fields=["paid_at"], condition=Q(status="paid"), name="idx_invoices_paid_at"),
            # Admin and API: a user's purchase history, newest first.
            models.Index(fields=["user", "-created_at"], name="idx_invoices_user_created"),
        ]

    def __str__(self) -> str:
        return f"invoice {self.pk} {self.amount_minor} {self.currency} ({self.status})"
