"""Reads for org billing: subscriptions, pools, allocations and member usage."""

import datetime
from decimal import Decimal
from typing import Any

from django.db.models import DecimalField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.changes import LEDGER_ROW
from billing.models import LIVE_SUBSCRIPTION_STATUSES, CreditAllocation, CreditPool, Subscription, UsageDaily
from billing.money import CREDIT_DECIMAL_PLACES, CREDIT_MAX_DIGITS, ZERO_CREDITS, to_credits
from ops_center import cache, replicas
from ops_center.api.pagination import DEFAULT_LIMIT, SortKey, keyset_page
from orgs.models import Membership

DEFAULT_USAGE_DAYS = 30
# The type of a computed credits column (a subquery or its zero): the ledger's own precision.
CREDITS_FIELD: "DecimalField[Decimal, Decimal]" = DecimalField(
    max_digits=CREDIT_MAX_DIGITS, decimal_places=CREDIT_DECIMAL_PLACES
)


def subscription_key(*, org_id: int) -> tuple:
    return ("subscription", cache.org_part(org_id), "current")


def credit_pool_key(*, org_id: int) -> tuple:
    return ("org_data", cache.org_part(org_id), "credit_pool")


def members_usage_key(*, org_id: int) -> tuple:
    return ("org_data", cache.org_part(org_id), "members_usage_30d")


def org_subscription(*, org_id: int) -> tuple[dict | None, bool]:
    """The org's current subscription, or None. Returns (data, cache hit)."""
    return cache.get_or_set(*subscription_key(org_id=org_id), compute=lambda: _subscription_from_db(org_id=org_id))


def _subscription_from_db(*, org_id: int) -> dict | None:
    columns = ("id", "status", "current_period_start", "current_period_end", "cancel_at_period_end")
    plan_columns = ("plan__code", "plan__name", "plan__price_minor", "plan__currency", "plan__interval")
    live = Subscription.objects.filter(org_id=org_id, status__in=LIVE_SUBSCRIPTION_STATUSES)
    # Sliced rather than .first(): no ORDER BY id, so the planner keeps idx_subscriptions_active.
    row = next(iter(live.values(*columns, *plan_columns, "plan__included_credits")[:1]), None)
    if row is None:
        # An org whose payment failed still has a current, if unpaid, subscription.
        past_due = Subscription.objects.filter(org_id=org_id, status=Subscription.Status.PAST_DUE)
        row = past_due.order_by("-current_period_end").values(*columns, *plan_columns, "plan__included_credits").first()
    if row is None:
        return None
    return {
        "id": row["id"],
        "org_id": org_id,
        "status": row["status"],
        "plan": {
            "code": row["plan__code"],
            "name": row["plan__name"],
            "price_minor": row["plan__price_minor"],
            "currency": row["plan__currency"],
            "interval": row["plan__interval"],
            "included_credits": row["plan__included_credits"],
        },
        "current_period_start": row["current_period_start"],
        "current_period_end": row["current_period_end"],
        "cancel_at_period_end": row["cancel_at_period_end"],
    }


def days_left(*, subscription: dict) -> int:
    """Whole days until the period ends; computed per request so a cached value never goes stale."""
    return max(0, (subscription["current_period_end"] - timezone.now()).days)


# Answered from idx_credit_pools_org's INCLUDE list; next_refresh_date is one heap fetch.
POOL_COLUMNS = ("total_credits", "allocated_credits", "used_credits", "available_credits")


def org_credit_pool(*, org_id: int) -> tuple[dict | None, bool]:
    """The org's pool counters, or None. Returns (data, cache hit)."""
    return cache.get_or_set(*credit_pool_key(org_id=org_id), compute=lambda: _pool_from_db(org_id=org_id))


def _pool_from_db(*, org_id: int) -> dict | None:
    pool = CreditPool.objects.filter(org_id=org_id)
    row = next(iter(pool.values(*POOL_COLUMNS, "next_refresh_date")[:1]), None)
    if row is None:
        return None
    return {
        "org_id": org_id,
        "total": row["total_credits"],
        "allocated": row["allocated_credits"],
        "used": row["used_credits"],
        "available": row["available_credits"],
        "next_refresh_date": row["next_refresh_date"],
    }


def member_allocation(*, org_id: int, user_id: int) -> dict:
    row = (
        CreditAllocation.objects.filter(pool__org_id=org_id, user_id=user_id)
        .values("allocated_credits", "used_credits", "note", "updated_at")
        .first()
    )
    allocated = row["allocated_credits"] if row else ZERO_CREDITS
    used = row["used_credits"] if row else ZERO_CREDITS
    return {
        "org_id": org_id,
        "user_id": user_id,
        "allocated": allocated,
        "used": used,
        "remaining": allocated - used,
        "note": row["note"] if row else "",
        "updated_at": row["updated_at"] if row else None,
    }


def _finite_credits(value: Any) -> Decimal:
    """A cursor's credits back from JSON; Decimal refuses what no cursor holds (SortKey.load)."""
    credits = Decimal(value)
    if not credits.is_finite():
        raise ValueError("not a finite amount")
    return credits


MEMBER_SORTS = {
    # sort name -> keyset order; the window's credits travel in the cursor as a string, as in the API
    sort: (SortKey("window_credits", descending=sort == "-usage", dump=str, load=_finite_credits), SortKey("user_id"))
    for sort in ("-usage", "usage")
}


def members_usage_page(
    *,
    org_id: int,
    days: int = DEFAULT_USAGE_DAYS,
    sort: str = "-usage",
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> tuple[dict, bool]:
    """Each member's allocation and usage in the window, one page, in one query.

    The default view (30 days, heaviest users first, first page) is cached.
    """
    if days == DEFAULT_USAGE_DAYS and sort == "-usage" and limit == DEFAULT_LIMIT and cursor is None:
        return cache.get_or_set(
            *members_usage_key(org_id=org_id), compute=lambda: _default_members_usage_from_db(org_id=org_id)
        )
    return _members_usage_from_db(org_id=org_id, days=days, sort=sort, limit=limit, cursor=cursor), False


def _rounded(rows: list[dict]) -> list[dict]:
    """Computed columns: SQLite returns their sums unrounded, PostgreSQL already at 4 places."""
    for row in rows:
        row.update({name: to_credits(row[name]) for name in ("window_credits", "allocated", "used")})
    return rows


def _members_usage_from_db(*, org_id: int, days: int, sort: str, limit: int, cursor: str | None) -> dict:
    since = timezone.now().date() - datetime.timedelta(days=days - 1)
    window_usage = (
        UsageDaily.objects.filter(org_id=org_id, user_id=OuterRef("user_id"), day__gte=since)
        .values("user_id")
        .annotate(total=Sum("credits"))
        .values("total")
    )
    allocation = CreditAllocation.objects.filter(pool__org_id=org_id, user_id=OuterRef("user_id"))
    zero = Value(ZERO_CREDITS, output_field=CREDITS_FIELD)
    members = Membership.objects.filter(org_id=org_id).annotate(
        window_credits=Coalesce(Subquery(window_usage, output_field=CREDITS_FIELD), zero),
        allocated=Coalesce(Subquery(allocation.values("allocated_credits")[:1], output_field=CREDITS_FIELD), zero),
        used=Coalesce(Subquery(allocation.values("used_credits")[:1], output_field=CREDITS_FIELD), zero),
    )
    columns = ("user_id", "user__username", "role", "window_credits", "allocated", "used")
    rows, next_cursor = keyset_page(
        members.values(*columns),
        cursor=cursor,
        limit=limit,
        # The sort is part of the scope: a "-usage" cursor means nothing in "usage" order.
        scope=f"org.members_usage:{sort}",
        order=MEMBER_SORTS[sort],
        # A caught-up replica, else the primary.
        fetch=lambda page: _rounded(replicas.read(lambda: list(page), org_id=org_id)),
    )
    return {
        "days": days,
        "results": [
            {
                "user_id": row["user_id"],
                "username": row["user__username"],
                "role": row["role"],
                "allocated": row["allocated"],
                "used": row["used"],
                "remaining": row["allocated"] - row["used"],
                "usage_in_window": row["window_credits"],
            }
            for row in rows
        ],
        "next_cursor": next_cursor,
    }


SUBSCRIPTIONS_SCOPE = "org.subscriptions"
NEWEST_SUBSCRIPTION_FIRST = (SortKey("id", descending=True),)


def subscriptions_page(
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    status: str | None = None,
    plan: str | None = None,
    period_end_after: datetime.datetime | None = None,
    period_end_before: datetime.datetime | None = None,
) -> dict:
    """Every subscription, newest first, for staff. One query per page, keyset on id."""
    queryset = Subscription.objects.all()
    if status:
        queryset = queryset.filter(status=status)
    if plan:
        queryset = queryset.filter(plan__code=plan)
    if period_end_after:
        queryset = queryset.filter(current_period_end__gte=period_end_after)
    if period_end_before:
        queryset = queryset.filter(current_period_end__lt=period_end_before)
    rows, next_cursor = keyset_page(
        queryset.values(
            "id",
            "org_id",
            "org__name",
            "plan__code",
            "status",
            "current_period_start",
            "current_period_end",
            "cancel_at_period_end",
        ),
        cursor=cursor,
        limit=limit,
        scope=SUBSCRIPTIONS_SCOPE,
        order=NEWEST_SUBSCRIPTION_FIRST,
        # A replica within REPLICA_MAX_LAG_SECONDS, else the primary.
        fetch=lambda page: replicas.read(lambda: list(page)),
    )
    return {
        "results": [
            {
                "id": row["id"],
                "org_id": row["org_id"],
                "org_name": row["org__name"],
                "plan": row["plan__code"],
                "status": row["status"],
                "current_period_start": row["current_period_start"],
                "current_period_end": row["current_period_end"],
                "cancel_at_period_end": row["cancel_at_period_end"],
            }
            for row in rows
        ],
        "next_cursor": next_cursor,
    }


def live_subscription_org_ids() -> list[int]:
    return list(
        Subscription.objects.filter(status__in=LIVE_SUBSCRIPTION_STATUSES)
        .order_by("org_id")
        .values_list("org_id", flat=True)
    )


def _default_members_usage_from_db(*, org_id: int) -> dict:
    return _members_usage_from_db(
        org_id=org_id, days=DEFAULT_USAGE_DAYS, sort="-usage", limit=DEFAULT_LIMIT, cursor=None
    )


def register_cached_views() -> None:
    """The cached views of an org's billing: a write that changes one evicts it, and refills it if in use.

    The subscription changes with no ledger row: only with the org's billing
    cycle, or a staff edit (billing.signals), each of which evicts every view of the org.
    """
    cache.register_view("org", key=subscription_key, compute=_subscription_from_db, changed_by=[])
    cache.register_view("org", key=credit_pool_key, compute=_pool_from_db, changed_by=[LEDGER_ROW])
    cache.register_view("org", key=members_usage_key, compute=_default_members_usage_from_db, changed_by=[LEDGER_ROW])


def warm_org(*, org_id: int) -> None:
    """Recompute and store the cached views of one org."""
    cache.warm("org", org_id)
