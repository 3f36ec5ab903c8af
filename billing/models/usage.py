"""Daily usage rollup: what the usage summary reads instead of scanning the ledger."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing.money import credit_field


class UsageDaily(models.Model):
    """Credits and units used per user, org (or personal), day and service.

    Kept current by an upsert in the same transaction as each usage write
    (billing.rollups.usage_recorded), so a summary costs O(days x services).
    """

    # No single-column indexes: idx_usage_daily_user_day and idx_usage_daily_org_day
    # lead with these columns and serve their lookups and cascading deletes.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    org = models.ForeignKey(
        "orgs.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField()
    service = models.CharField(max_length=60)
    credits = credit_field()
    units = models.BigIntegerField(default=0)
    events = models.BigIntegerField(default=0)

    class Meta:
        db_table = "usage_daily"
        verbose_name = verbose_name_plural = "daily usage"
        constraints = [
            # Two partial keys because NULL org ids never conflict in a plain
            # unique index; the upsert names the one it targets.
            models.UniqueConstraint(
                fields=["user", "day", "service"], condition=Q(org__isnull=True), name="uniq_usage_daily_personal"
            ),
            models.UniqueConstraint(
                fields=["user", "org", "day", "service"], condition=Q(org__isnull=False), name="uniq_usage_daily_org"
            ),
            models.CheckConstraint(condition=Q(credits__gte=0), name="usage_daily_credits_non_negative"),
            models.CheckConstraint(condition=Q(units__gte=0), name="usage_daily_units_non_negative"),
            models.CheckConstraint(condition=Q(events__gte=0), name="usage_daily_events_non_negative"),
        ]
        indexes = [
            # GET /credits/usage/summary: one user's days in a window.
            models.Index(fields=["user", "-day"], name="idx_usage_daily_user_day"),
            # Member usage in an org over a window.
            models.Index(fields=["org", "-day"], condition=Q(org__isnull=False), name="idx_usage_daily_org_day"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day} {self.service}: {self.credits}"
