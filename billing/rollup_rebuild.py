"""Recompute the daily rollups from the ledger and the invoices.

The live upkeep (billing.rollups) adds to them inside every write; this is the
repair path and the bulk-load path, and it must land on exactly the same
numbers. It works month by month, each month in its own transaction, deleting
the month's rollup rows and inserting fresh aggregates.
"""

import datetime
from collections.abc import Callable, Iterator

from django.db import connection, transaction
from django.db.models import BigIntegerField, Count, Max, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, Mod, TruncDate

from billing.models import (
    CreditFlowDaily,
    CreditTransaction,
    Invoice,
    OrgUsageDaily,
    RevenueDaily,
    UsageDaily,
)
from billing.models.rollups import ROLLUP_SHARDS
from billing.rollups import USER_ACTIVITY_UPSERT

ROLLUPS = ("usage_daily", "org_usage_daily", "user_activity", "credit_flow_daily", "revenue_daily")
BATCH = 5000


def months_between(first: datetime.date, last: datetime.date) -> Iterator[tuple[datetime.date, datetime.date]]:
    """[start, end) pairs of calendar months covering first..last."""
    start = first.replace(day=1)
    while start <= last:
        end = (start + datetime.timedelta(days=32)).replace(day=1)
        yield max(start, first), min(end, last + datetime.timedelta(days=1))
        start = end


def ledger_date_range() -> tuple[datetime.date, datetime.date] | None:
    """The first and last day with a ledger row or a paid invoice (four index lookups)."""
    oldest = CreditTransaction.objects.order_by("created_at").values_list("created_at", flat=True).first()
    newest = CreditTransaction.objects.order_by("-created_at").values_list("created_at", flat=True).first()
    paid = Invoice.objects.filter(status=Invoice.Status.PAID)
    oldest_paid = paid.order_by("paid_at").values_list("paid_at", flat=True).first()
    newest_paid = paid.order_by("-paid_at").values_list("paid_at", flat=True).first()
    dates = [moment.date() for moment in (oldest, newest, oldest_paid, newest_paid) if moment is not None]
    return (min(dates), max(dates)) if dates else None


def rebuild(
    first: datetime.date,
    last: datetime.date,
    *,
    tables: tuple[str, ...] = ROLLUPS,
    on_month: Callable[[datetime.date], None] | None = None,
) -> None:
    unknown = set(tables) - set(ROLLUPS)
    if unknown:
        raise ValueError(f"unknown rollups: {sorted(unknown)}")
    for start, end in months_between(first, last):
        with transaction.atomic():
            for table in tables:
                REBUILDERS[table](start, end)
        if on_month:
            on_month(start)


def _day_window(field: str, start: datetime.date, end: datetime.date) -> Q:
    """[start, end) as a timestamp range (UTC days), so the created_at/paid_at indexes apply."""
    return Q(**{f"{field}__gte": _midnight(start), f"{field}__lt": _midnight(end)})


def _midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


def _usage_rows(start, end):
    return CreditTransaction.objects.filter(
        _day_window("created_at", start, end), transaction_type=CreditTransaction.Type.USAGE
    ).annotate(day=TruncDate("created_at"))


def _rebuild_usage_daily(start, end) -> None:
    UsageDaily.objects.filter(day__gte=start, day__lt=end).delete()
    rows = (
        _usage_rows(start, end)
        .annotate(service=KeyTextTransform("service", "metadata"))
        .values("user_id", "org_id", "day", "service")
        .annotate(
            spent=Sum("amount"),
            units=Sum(Cast(KeyTextTransform("units", "metadata"), BigIntegerField())),
            events=Count("id"),
        )
    )
    UsageDaily.objects.bulk_create(
        (
            UsageDaily(
                user_id=row["user_id"],
                org_id=row["org_id"],
                day=row["day"],
                service=row["service"],
                credits=-row["spent"],
                units=row["units"] or 0,
                events=row["events"],
            )
            for row in rows.iterator(chunk_size=BATCH)
        ),
        batch_size=BATCH,
    )


def _rebuild_org_usage_daily(start, end) -> None:
    OrgUsageDaily.objects.filter(day__gte=start, day__lt=end).delete()
    rows = _usage_rows(start, end).filter(org__isnull=False).values("org_id", "day").annotate(spent=Sum("amount"))
    OrgUsageDaily.objects.bulk_create(
        (OrgUsageDaily(org_id=row["org_id"], day=row["day"], credits=-row["spent"]) for row in rows.iterator()),
        batch_size=BATCH,
    )


def _rebuild_user_activity(start, end) -> None:
    """Only ever moves a user's last usage day forward: usage rows are never deleted."""
    rows = _usage_rows(start, end).values("user_id").annotate(last=Max("day"))
    with connection.cursor() as cursor:
        cursor.executemany(
            USER_ACTIVITY_UPSERT, [(row["user_id"], row["last"]) for row in rows.iterator(chunk_size=BATCH)]
        )


FLOW_BY_TYPE = {
    CreditTransaction.Type.PURCHASE: ("purchased", 1),
    CreditTransaction.Type.USAGE: ("consumed", -1),
    CreditTransaction.Type.ADJUSTMENT: ("granted", 1),
    CreditTransaction.Type.REFRESH: ("refreshed", 1),
}


def _rebuild_credit_flow_daily(start, end) -> None:
    CreditFlowDaily.objects.filter(day__gte=start, day__lt=end).delete()
    rows = (
        CreditTransaction.objects.filter(_day_window("created_at", start, end), transaction_type__in=list(FLOW_BY_TYPE))
        .annotate(day=TruncDate("created_at"), shard=Mod("user_id", ROLLUP_SHARDS))
        .values("day", "shard", "transaction_type")
        .annotate(total=Sum("amount"))
    )
    flows: dict[tuple, CreditFlowDaily] = {}
    for row in rows.iterator():
        flow = flows.setdefault((row["day"], row["shard"]), CreditFlowDaily(day=row["day"], shard=row["shard"]))
        column, sign = FLOW_BY_TYPE[row["transaction_type"]]
        setattr(flow, column, getattr(flow, column) + sign * row["total"])
    CreditFlowDaily.objects.bulk_create(flows.values(), batch_size=BATCH)


def _rebuild_revenue_daily(start, end) -> None:
    RevenueDaily.objects.filter(day__gte=start, day__lt=end).delete()
    rows = (
        Invoice.objects.filter(_day_window("paid_at", start, end), status=Invoice.Status.PAID)
        .annotate(day=TruncDate("paid_at"), shard_key=Mod(_invoice_shard_key(), ROLLUP_SHARDS))
        .values("day", "currency", "source", "shard_key")
        .annotate(amount=Sum("amount_minor"), count=Count("id"))
    )
    RevenueDaily.objects.bulk_create(
        (
            RevenueDaily(
                day=row["day"],
                currency=row["currency"],
                source=row["source"],
                shard=row["shard_key"],
                amount_minor=row["amount"],
                invoices=row["count"],
            )
            for row in rows.iterator()
        ),
        batch_size=BATCH,
    )


def _invoice_shard_key():
    """Purchases shard by their buyer, subscription invoices by their org (as the live upkeep does)."""
    return Coalesce("user_id", "org_id")


REBUILDERS = {
    "usage_daily": _rebuild_usage_daily,
    "org_usage_daily": _rebuild_org_usage_daily,
    "user_activity": _rebuild_user_activity,
    "credit_flow_daily": _rebuild_credit_flow_daily,
    "revenue_daily": _rebuild_revenue_daily,
}
