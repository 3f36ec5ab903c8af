"""Platform analytics and revenue trends, read from the daily rollups only.

Every figure is a fixed number of queries over rollup rows (days x currencies,
days x shards, orgs x days) or over tables bounded by the customer count
(users, orgs, subscriptions); none reads the ledger or the invoices, so the
cost does not grow with the number of transactions.
"""

import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek
from django.utils import timezone

from billing.models import (
    LIVE_SUBSCRIPTION_STATUSES,
    CreditFlowDaily,
    OrgUsageDaily,
    Plan,
    RevenueDaily,
    Subscription,
    UserActivity,
)
from billing.money import ZERO_CREDITS, to_credits
from ops_center import cache, replicas
from orgs.models import Organization, User

WINDOW_DAYS = 30
TOP_ORGS = 10
TRUNCATE = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}


PLATFORM_KEY = ("analytics", "platform")


def revenue_trends_key(*, interval: str, periods: int, currency: str) -> tuple:
    return ("analytics", "revenue_trends", interval, periods, currency)


def platform_analytics() -> tuple[dict, bool]:
    # Rollups and counts, cached 120 s: a replica within REPLICA_MAX_LAG_SECONDS serves them.
    return cache.get_or_set(*PLATFORM_KEY, compute=lambda: replicas.read(_platform_from_db))


def _platform_from_db() -> dict:
    today = timezone.now().date()
    window_start = today - datetime.timedelta(days=WINDOW_DAYS - 1)
    previous_start = window_start - datetime.timedelta(days=WINDOW_DAYS)
    current, previous = Q(day__gte=window_start), Q(day__gte=previous_start, day__lt=window_start)
    return {
        "as_of": today,
        "window_days": WINDOW_DAYS,
        "users": {
            "total": User.objects.count(),
            "active_last_30_days": UserActivity.objects.filter(last_usage_on__gte=window_start).count(),
        },
        "organizations": {"total": Organization.objects.count()},
        "subscriptions": _subscriptions(),
        "mrr": _monthly_recurring_revenue(),
        "revenue": _revenue_windows(previous_start, current, previous),
        "credits": _credit_windows(previous_start, current, previous),
        "top_orgs": _top_orgs(window_start),
    }


def _subscriptions() -> dict:
    by_status = dict(Subscription.objects.values_list("status").annotate(count=Count("id")).order_by())
    by_plan = (
        Subscription.objects.filter(status__in=LIVE_SUBSCRIPTION_STATUSES)
        .values_list("plan__code")
        .annotate(count=Count("id"))
        .order_by()
    )
    return {
        "by_status": {status: by_status.get(status, 0) for status in Subscription.Status.values},
        "live_by_plan": dict(sorted(by_plan)),
    }


def _monthly_recurring_revenue() -> list[dict]:
    """Active subscriptions' prices per month, per currency: yearly plans count a twelfth."""
    rows = (
        Subscription.objects.filter(status=Subscription.Status.ACTIVE)
        .values_list("plan__currency", "plan__interval")
        .annotate(total=Sum("plan__price_minor"), count=Count("id"))
        .order_by()
    )
    mrr: dict[str, Decimal] = {}
    for currency, interval, total, _ in rows:
        monthly = Decimal(total) / 12 if interval == Plan.Interval.YEAR else Decimal(total)
        mrr[currency] = mrr.get(currency, Decimal(0)) + monthly
    return [
        {"currency": currency, "amount_minor": int(amount.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))}
        for currency, amount in sorted(mrr.items())
    ]


def _change(current: int | Decimal, previous: int | Decimal) -> dict:
    change = None
    if previous:
        change = (Decimal(current - previous) * 100 / Decimal(previous)).quantize(Decimal("0.01"))
    return {"last_30_days": current, "previous_30_days": previous, "change_pct": change}


def _revenue_windows(since: datetime.date, current: Q, previous: Q) -> list[dict]:
    rows = (
        RevenueDaily.objects.filter(day__gte=since)
        .values("currency")
        .annotate(current=Sum("amount_minor", filter=current), previous=Sum("amount_minor", filter=previous))
        .order_by("currency")
    )
    return [{"currency": row["currency"], **_change(row["current"] or 0, row["previous"] or 0)} for row in rows]


def _credit_windows(since: datetime.date, current: Q, previous: Q) -> dict:
    totals = CreditFlowDaily.objects.filter(day__gte=since).aggregate(
        purchased_now=Sum("purchased", filter=current),
        purchased_before=Sum("purchased", filter=previous),
        consumed_now=Sum("consumed", filter=current),
        consumed_before=Sum("consumed", filter=previous),
    )
    # Sums come back unrounded from SQLite; to_credits gives both databases' answer.
    totals = {name: to_credits(value or ZERO_CREDITS) for name, value in totals.items()}
    return {
        "purchased": _change(totals["purchased_now"], totals["purchased_before"]),
        "consumed": _change(totals["consumed_now"], totals["consumed_before"]),
    }


def _top_orgs(since: datetime.date) -> list[dict]:
    rows = (
        OrgUsageDaily.objects.filter(day__gte=since)
        .values("org_id", "org__name")
        .annotate(credits=Sum("credits"))
        .order_by("-credits", "org_id")[:TOP_ORGS]
    )
    return [
        {"org_id": row["org_id"], "name": row["org__name"], "credits_used": to_credits(row["credits"])} for row in rows
    ]


def period_starts(*, interval: str, periods: int, today: datetime.date) -> list[datetime.date]:
    """The first day of each of the last ``periods`` periods, oldest first, ending with today's."""
    if interval == "day":
        return [today - datetime.timedelta(days=offset) for offset in range(periods - 1, -1, -1)]
    if interval == "week":
        this_week = today - datetime.timedelta(days=today.weekday())
        return [this_week - datetime.timedelta(weeks=offset) for offset in range(periods - 1, -1, -1)]
    starts, month = [], today.replace(day=1)
    for _ in range(periods):
        starts.append(month)
        month = (month - datetime.timedelta(days=1)).replace(day=1)
    return starts[::-1]


def revenue_trends(*, interval: str, periods: int, currency: str) -> tuple[dict, bool]:
    return cache.get_or_set(
        *revenue_trends_key(interval=interval, periods=periods, currency=currency),
        compute=lambda: replicas.read(
            lambda: _revenue_trends_from_db(interval=interval, periods=periods, currency=currency)
        ),
    )


def _revenue_trends_from_db(*, interval: str, periods: int, currency: str) -> dict:
    starts = period_starts(interval=interval, periods=periods, today=timezone.now().date())
    rows = (
        RevenueDaily.objects.filter(day__gte=starts[0], currency=currency)
        .annotate(period=TRUNCATE[interval]("day"))
        .values("period", "source")
        .annotate(amount=Sum("amount_minor"))
        .order_by()
    )
    amounts = {(_as_date(row["period"]), row["source"]): row["amount"] for row in rows}
    points = []
    for start in starts:
        subscriptions = amounts.get((start, RevenueDaily.Source.SUBSCRIPTION), 0)
        purchases = amounts.get((start, RevenueDaily.Source.CREDIT_PURCHASE), 0)
        points.append(
            {
                "period_start": start,
                "subscriptions": subscriptions,
                "purchases": purchases,
                "total": subscriptions + purchases,
            }
        )
    return {"interval": interval, "periods": periods, "currency": currency, "points": points}


def _as_date(value: datetime.date | datetime.datetime) -> datetime.date:
    return value.date() if isinstance(value, datetime.datetime) else value
