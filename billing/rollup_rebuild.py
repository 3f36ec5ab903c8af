"""Recompute the daily rollups from the ledger and the invoices.

The live upkeep (billing.rollups) adds to them inside every write; this is the
repair path and the bulk-load path, and it must land on exactly the same
numbers. Each rollup's recomputation is one aggregate query shaped like its
table (``Rollup.computed_sql``): rebuilding inserts its rows, month by month,
each month in its own transaction, and the ledger audit (billing.audit)
compares them with the stored rows instead.
"""

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.db import connection, models, transaction
from django.db.models import BigIntegerField, Count, Max, Q, QuerySet, Sum, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, Mod, Round, TruncDate

from billing.models import (
    CreditFlowDaily,
    CreditTransaction,
    Invoice,
    OrgUsageDaily,
    RevenueDaily,
    UsageDaily,
    UserActivity,
)
from billing.models.rollups import ROLLUP_SHARDS
from billing.money import CREDIT_DECIMAL_PLACES, ZERO_CREDITS
from billing.rollups import USER_ACTIVITY_INSERT, USER_ACTIVITY_ON_CONFLICT


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


@dataclass(frozen=True)
class Rollup:
    """A rollup table and the aggregate that recomputes its rows for a range of days.

    ``compute(start, end)`` returns one row per key, with ``keys`` and then
    ``values``, under the names in ``computed_names`` where an annotation may
    not take the table's column name (it would clash with a field of the model
    it aggregates).
    """

    model: type[models.Model]
    keys: tuple[str, ...]
    values: tuple[str, ...]
    compute: Callable[[datetime.date, datetime.date], QuerySet]
    computed_names: tuple[tuple[str, str], ...] = ()

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.keys, *self.values)

    def field(self, column: str) -> models.Field:
        """The model field behind one of the table's columns."""
        field = self.model._meta.get_field(column)
        if not isinstance(field, models.Field):
            raise TypeError(f"{self.table}.{column} is not a column")
        return field

    def computed_sql(self, start: datetime.date, end: datetime.date) -> tuple[str, list]:
        """``SELECT <columns> FROM (<the aggregate>)``, with the table's column names, and its params."""
        renamed = dict(self.computed_names)
        inner, params = self.compute(start, end).query.sql_with_params()
        select = ", ".join(f"{renamed.get(column, column)} AS {column}" for column in self.columns)
        return f"SELECT {select} FROM ({inner}) computed", list(params)  # noqa: S608 - our identifiers

    def stored(self, start: datetime.date, end: datetime.date) -> QuerySet:
        """The table's rows for the days in [start, end); user_activity, keyed by user, has no day."""
        return self.model._default_manager.filter(day__gte=start, day__lt=end)


def _day_window(field: str, start: datetime.date, end: datetime.date) -> Q:
    """[start, end) as a timestamp range (UTC days), so the created_at/paid_at indexes apply."""
    return Q(**{f"{field}__gte": _midnight(start), f"{field}__lt": _midnight(end)})


def _midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


def _credits(expression) -> Round:
    """A summed credit amount rounded to the credit precision: SQLite sums binary floats."""
    return Round(expression, CREDIT_DECIMAL_PLACES)


def _usage_rows(start: datetime.date, end: datetime.date) -> QuerySet:
    return (
        CreditTransaction.objects.filter(
            _day_window("created_at", start, end), transaction_type=CreditTransaction.Type.USAGE
        )
        .annotate(day=TruncDate("created_at"))
        .order_by()
    )


def _usage_daily(start: datetime.date, end: datetime.date) -> QuerySet:
    return (
        _usage_rows(start, end)
        .annotate(service=KeyTextTransform("service", "metadata"))
        .values("user_id", "org_id", "day", "service")
        .annotate(
            credits=_credits(-Sum("amount")),
            units=Coalesce(
                Sum(Cast(KeyTextTransform("units", "metadata"), BigIntegerField())), 0, output_field=BigIntegerField()
            ),
            events=Count("id"),
        )
    )


def _org_usage_daily(start: datetime.date, end: datetime.date) -> QuerySet:
    return (
        _usage_rows(start, end)
        .filter(org__isnull=False)
        .values("org_id", "day")
        .annotate(credits=_credits(-Sum("amount")))
    )


def _user_activity(start: datetime.date, end: datetime.date) -> QuerySet:
    return _usage_rows(start, end).values("user_id").annotate(last=Max("day"))


# Each credit flow column sums one transaction type, with its sign (usage rows are negative).
FLOW_BY_TYPE = {
    "purchased": (CreditTransaction.Type.PURCHASE, 1),
    "consumed": (CreditTransaction.Type.USAGE, -1),
    "granted": (CreditTransaction.Type.ADJUSTMENT, 1),
    "refreshed": (CreditTransaction.Type.REFRESH, 1),
}


def _credit_flow_daily(start: datetime.date, end: datetime.date) -> QuerySet:
    flows = {
        column: _credits(Coalesce(sign * Sum("amount", filter=Q(transaction_type=kind)), Value(ZERO_CREDITS)))
        for column, (kind, sign) in FLOW_BY_TYPE.items()
    }
    return (
        CreditTransaction.objects.filter(
            _day_window("created_at", start, end),
            transaction_type__in=[kind for kind, _ in FLOW_BY_TYPE.values()],
        )
        .annotate(day=TruncDate("created_at"), shard=Mod("user_id", ROLLUP_SHARDS))
        .order_by()
        .values("day", "shard")
        .annotate(**flows)
    )


def _revenue_daily(start: datetime.date, end: datetime.date) -> QuerySet:
    return (
        Invoice.objects.filter(_day_window("paid_at", start, end), status=Invoice.Status.PAID)
        # Purchases shard by their buyer, subscription invoices by their org (as the live upkeep does).
        .annotate(day=TruncDate("paid_at"), shard=Mod(Coalesce("user_id", "org_id"), ROLLUP_SHARDS))
        .order_by()
        .values("day", "currency", "source", "shard")
        .annotate(paid_minor=Sum("amount_minor"), paid_invoices=Count("id"))
    )


REGISTRY = {
    rollup.table: rollup
    for rollup in (
        Rollup(UsageDaily, ("user_id", "org_id", "day", "service"), ("credits", "units", "events"), _usage_daily),
        Rollup(OrgUsageDaily, ("org_id", "day"), ("credits",), _org_usage_daily),
        Rollup(UserActivity, ("user_id",), ("last_usage_on",), _user_activity, (("last_usage_on", "last"),)),
        Rollup(CreditFlowDaily, ("day", "shard"), tuple(FLOW_BY_TYPE), _credit_flow_daily),
        Rollup(
            RevenueDaily,
            ("day", "currency", "source", "shard"),
            ("amount_minor", "invoices"),
            _revenue_daily,
            (("amount_minor", "paid_minor"), ("invoices", "paid_invoices")),
        ),
    )
}
ROLLUPS = tuple(REGISTRY)


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
                _rebuild_month(REGISTRY[table], start, end)
        if on_month:
            on_month(start)


def _rebuild_month(rollup: Rollup, start: datetime.date, end: datetime.date) -> None:
    computed, params = rollup.computed_sql(start, end)
    insert = f"INSERT INTO {rollup.table} ({', '.join(rollup.columns)}) {computed}"
    if rollup.model is UserActivity:
        # Only ever moves a user's last usage day forward: usage rows are never deleted.
        # "WHERE true" lets SQLite tell the upsert's ON CONFLICT from a join's ON.
        insert = f"{USER_ACTIVITY_INSERT} {computed} WHERE true {USER_ACTIVITY_ON_CONFLICT}"
    else:
        rollup.stored(start, end).delete()
    with connection.cursor() as cursor:
        cursor.execute(insert, params)
