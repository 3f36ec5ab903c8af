"""Daily rollups kept current inside the writing transaction, so reports cost O(days), not O(rows).

They live beside the ledger because billing's own transactions write them;
the analytics app only reads them.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.models.subscriptions import InvoiceSource
from billing.money import CURRENCY_PATTERN, credit_field

# Every write of a day lands on the same rollup row; spreading each day over a
# few rows (by user id) keeps concurrent writers from queueing on one row lock.
# Reports sum the shards.
ROLLUP_SHARDS = 16


class RevenueDaily(models.Model):
    """Money taken per day, currency and source (paid invoices, by paid_at date)."""

    # Revenue is booked under the source of the invoice that was paid.
    Source = InvoiceSource

    day = models.DateField()
    currency = models.CharField(max_length=3)
    source = models.CharField(max_length=16, choices=Source.choices)
    shard = models.PositiveSmallIntegerField(default=0)
    amount_minor = models.BigIntegerField(default=0)
    invoices = models.BigIntegerField(default=0)

    class Meta:
        db_table = "revenue_daily"
        verbose_name = verbose_name_plural = "daily revenue"
        constraints = [
            models.UniqueConstraint(fields=["day", "currency", "source", "shard"], name="uniq_revenue_daily_key"),
            models.CheckConstraint(condition=Q(source__in=InvoiceSource.values), name="revenue_daily_source_known"),
            models.CheckConstraint(
                condition=Q(currency__regex=CURRENCY_PATTERN), name="revenue_daily_currency_iso_4217"
            ),
            # Each paid invoice adds its amount (never negative) and one to its day: nothing subtracts.
            models.CheckConstraint(
                condition=Q(amount_minor__gte=0) & Q(invoices__gte=0), name="revenue_daily_counters_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.source} {self.amount_minor} {self.currency}"


class CreditFlowDaily(models.Model):
    """Credits entering and leaving the platform per day, from the ledger by type."""

    day = models.DateField()
    shard = models.PositiveSmallIntegerField(default=0)
    purchased = credit_field()
    consumed = credit_field()
    granted = credit_field(help_text="Staff adjustments, signed: grants minus corrections.")
    refreshed = credit_field()

    class Meta:
        db_table = "credit_flow_daily"
        verbose_name = verbose_name_plural = "daily credit flow"
        constraints = [
            models.UniqueConstraint(fields=["day", "shard"], name="uniq_credit_flow_daily_key"),
            # Not granted: staff corrections take credits back, so a day's grants may sum below zero.
            models.CheckConstraint(
                condition=Q(purchased__gte=0) & Q(consumed__gte=0) & Q(refreshed__gte=0),
                name="credit_flow_daily_flows_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day}: +{self.purchased} -{self.consumed}"


class OrgUsageDaily(models.Model):
    """Credits used per org per day: the top-orgs report reads O(orgs x days) rows."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    credits = credit_field()

    class Meta:
        db_table = "org_usage_daily"
        verbose_name = verbose_name_plural = "daily org usage"
        constraints = [
            models.UniqueConstraint(fields=["org", "day"], name="uniq_org_usage_daily_key"),
            models.CheckConstraint(condition=Q(credits__gte=0), name="org_usage_daily_credits_non_negative"),
        ]
        indexes = [
            # Top orgs by usage over a window: a range over days.
            models.Index(fields=["day"], name="idx_org_usage_daily_day"),
        ]

    def __str__(self) -> str:
        return f"{self.org_id} {self.day}: {self.credits}"


class UserActivity(models.Model):
    """The last day each user metered usage: "active users" counts a range of this index."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+")
    last_usage_on = models.DateField()

    class Meta:
        db_table = "user_activity"
        verbose_name = verbose_name_plural = "user activity"
        indexes = [
            # Active users in the last N days: an index-only range count.
            models.Index(fields=["last_usage_on"], name="idx_user_activity_last_usage"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} last used {self.last_usage_on}"


__all__ = ["CreditFlowDaily", "OrgUsageDaily", "RevenueDaily", "UserActivity"]
