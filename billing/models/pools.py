"""Organization credit pools and the members' allocations from them."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from billing.money import CREDIT_DECIMAL_PLACES, CREDIT_MAX_DIGITS, credit_field
from ops_center.db import CoveringUniqueConstraint, LongNameIndex


class CreditPool(models.Model):
    """An org's credits: ``total`` granted, ``allocated`` to members, ``used`` by them.

    ``available_credits`` (total - allocated, what admins can still hand out)
    is a stored generated column, so it can never disagree with its inputs and
    can sit in the covering index that answers the credit-pool endpoint.
    """

    # One pool per org, kept by idx_credit_pools_org below: a OneToOneField would add a
    # second unique index on org_id beside it, maintained on every pool write for nothing.
    org = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+", db_index=False)
    total_credits = credit_field()
    allocated_credits = credit_field()
    used_credits = credit_field()
    available_credits = models.GeneratedField(
        expression=F("total_credits") - F("allocated_credits"),
        output_field=models.DecimalField(max_digits=CREDIT_MAX_DIGITS, decimal_places=CREDIT_DECIMAL_PLACES),
        db_persist=True,
    )
    next_refresh_date = models.DateTimeField(null=True, blank=True)
    # Webhook alerts, set by the org's admins; NULL turns each off. credit_pool.low fires when
    # usage takes the pool's unused credits (total - used) from above low_pool_threshold to at or
    # below it; allocation.low when it does so to a member's remaining allocation. Read by the
    # usage's own pool UPDATE ... RETURNING (billing/alerts.py).
    low_pool_threshold = credit_field(default=None, null=True, blank=True)
    low_allocation_threshold = credit_field(default=None, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "credit_pools"
        constraints = [
            # Credit pool lookup, a hot path: GET .../credit-pool on a cache miss,
            # answered by an index-only scan. Unique: one pool per org.
            CoveringUniqueConstraint(
                fields=["org"],
                include=["total_credits", "allocated_credits", "used_credits", "available_credits"],
                name="idx_credit_pools_org",
            ),
            models.CheckConstraint(
                condition=(Q(low_pool_threshold__isnull=True) | Q(low_pool_threshold__gte=0))
                & (Q(low_allocation_threshold__isnull=True) | Q(low_allocation_threshold__gte=0)),
                name="credit_pool_alert_thresholds_non_negative",
            ),
            models.CheckConstraint(condition=Q(used_credits__gte=0), name="credit_pool_used_non_negative"),
            models.CheckConstraint(
                condition=Q(used_credits__lte=F("allocated_credits")), name="credit_pool_used_within_allocated"
            ),
            models.CheckConstraint(
                condition=Q(allocated_credits__lte=F("total_credits")), name="credit_pool_allocated_within_total"
            ),
        ]
        indexes = [
            # Refresh processing: the pools due within a day. A partial index on
            # `next_refresh_date <= NOW() + INTERVAL '1 day'` is refused by
            # PostgreSQL (index predicates must be IMMUTABLE, NOW() is not), and
            # a predicate frozen at build time would silently go stale anyway.
            # A b-tree on the date serves the same query,
            # `WHERE next_refresh_date <= now() + interval '1 day'`, as a range
            # scan; leaving out pools that never refresh keeps it as small.
            LongNameIndex(
                fields=["next_refresh_date"],
                condition=Q(next_refresh_date__isnull=False),
                name="idx_credit_pools_refresh",
            ),
        ]

    def __str__(self) -> str:
        return f"pool of org {self.org_id}"


class CreditAllocation(models.Model):
    """A member's share of their org's pool; ``used`` never exceeds ``allocated``."""

    # No index of its own: uniq_credit_allocation_pool_user leads with pool_id and serves its lookups.
    pool = models.ForeignKey(CreditPool, on_delete=models.PROTECT, related_name="allocations", db_index=False)
    # Its foreign-key index serves GET /credits/balance: every allocation of one user, across orgs.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="credit_allocations")
    allocated_credits = credit_field()
    used_credits = credit_field()
    note = models.CharField(max_length=255, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pool", "user"], name="uniq_credit_allocation_pool_user"),
            models.CheckConstraint(condition=Q(used_credits__gte=0), name="credit_allocation_used_non_negative"),
            models.CheckConstraint(
                condition=Q(used_credits__lte=F("allocated_credits")), name="credit_allocation_used_within_allocated"
            ),
        ]

    def __str__(self) -> str:
        return f"allocation of user {self.user_id} in pool {self.pool_id}"
