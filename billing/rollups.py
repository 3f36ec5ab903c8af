"""Atomic upserts that keep the daily rollups current inside the writing transaction.

Each is one ``INSERT ... ON CONFLICT DO UPDATE SET x = x + EXCLUDED.x``:
concurrent writers never lose an increment, and a rolled-back write takes its
increments with it. ``billing.rollup_rebuild`` recomputes the same tables from
the ledger and the invoices; a test proves the two agree.
"""

import datetime
from decimal import Decimal

from django.db import connection

from billing.models import CreditFlowDaily, OrgUsageDaily, RevenueDaily, UsageDaily, UserActivity
from billing.models.rollups import ROLLUP_SHARDS
from billing.money import credits_sql

FLOW_COLUMNS = ("purchased", "consumed", "granted", "refreshed")

# Each upsert in two halves, so that billing.debit can feed the same statements
# from a CTE (INSERT ... SELECT ... FROM debited) instead of VALUES.
USAGE_INSERT = (
    f"INSERT INTO {UsageDaily._meta.db_table} AS rollup (user_id, org_id, day, service, credits, units, events)"
)
_PERSONAL_CONFLICT = "(user_id, day, service) WHERE org_id IS NULL"
_ORG_CONFLICT = "(user_id, org_id, day, service) WHERE org_id IS NOT NULL"


def usage_on_conflict(*, org_billed: bool) -> str:
    """Add the event to the day's row; returns the row's event count (1: the day's first of its kind)."""
    return (
        f"ON CONFLICT {_ORG_CONFLICT if org_billed else _PERSONAL_CONFLICT} DO UPDATE SET "
        f"credits = {credits_sql('rollup.credits + EXCLUDED.credits')}, "
        "units = rollup.units + EXCLUDED.units, events = rollup.events + 1 RETURNING events"
    )


USER_ACTIVITY_INSERT = f"INSERT INTO {UserActivity._meta.db_table} AS activity (user_id, last_usage_on)"
# Never moves a user's last usage day backwards, whatever order writes commit in.
USER_ACTIVITY_ON_CONFLICT = (
    "ON CONFLICT (user_id) DO UPDATE SET last_usage_on = CASE WHEN EXCLUDED.last_usage_on > activity.last_usage_on "
    "THEN EXCLUDED.last_usage_on ELSE activity.last_usage_on END"
)
USER_ACTIVITY_UPSERT = f"{USER_ACTIVITY_INSERT} VALUES (%s, %s) {USER_ACTIVITY_ON_CONFLICT}"
FLOW_INSERT = f"INSERT INTO {CreditFlowDaily._meta.db_table} AS flow (day, shard, {', '.join(FLOW_COLUMNS)})"
FLOW_ON_CONFLICT = "ON CONFLICT (day, shard) DO UPDATE SET " + ", ".join(
    f"{column} = {credits_sql(f'flow.{column} + EXCLUDED.{column}')}" for column in FLOW_COLUMNS
)


def _execute(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def usage_recorded(
    *, user_id: int, org_id: int | None, day: datetime.date, service: str, credits: Decimal, units: int
) -> None:
    """One metered usage event: per-user usage, org usage, the credit flow and user activity."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"{USAGE_INSERT} VALUES (%s, %s, %s, %s, %s, %s, 1) {usage_on_conflict(org_billed=org_id is not None)}",
            [user_id, org_id, day, service, credits, units],
        )
        (events,) = cursor.fetchone()
    if org_id is not None:
        _execute(
            f"INSERT INTO {OrgUsageDaily._meta.db_table} AS rollup (org_id, day, credits) VALUES (%s, %s, %s) "  # noqa: S608
            f"ON CONFLICT (org_id, day) DO UPDATE SET credits = {credits_sql('rollup.credits + EXCLUDED.credits')}",
            [org_id, day, credits],
        )
    if events == 1:
        # The day's first event of this kind; a later one (its row locked by the
        # upsert above, so never a concurrent one) already left the day in place.
        _execute(USER_ACTIVITY_UPSERT, [user_id, day])
    credits_flowed(day=day, shard_key=user_id, consumed=credits)


def flow_shard(shard_key: int) -> int:
    return shard_key % ROLLUP_SHARDS


def credits_flowed(*, day: datetime.date, shard_key: int, **amounts: Decimal) -> None:
    """Add to the day's credit flow: purchased, consumed, granted (signed) or refreshed."""
    unknown = set(amounts) - set(FLOW_COLUMNS)
    if unknown:
        raise ValueError(f"unknown credit flows: {sorted(unknown)}")
    values = [amounts.get(column, Decimal(0)) for column in FLOW_COLUMNS]
    _execute(f"{FLOW_INSERT} VALUES (%s, %s, %s, %s, %s, %s) {FLOW_ON_CONFLICT}", [day, flow_shard(shard_key), *values])


def revenue_recorded(*, day: datetime.date, currency: str, source: str, amount_minor: int, shard_key: int) -> None:
    """A paid invoice: add its amount to the day's revenue for its currency and source."""
    _execute(
        f"INSERT INTO {RevenueDaily._meta.db_table} AS revenue "  # noqa: S608
        "(day, currency, source, shard, amount_minor, invoices) VALUES (%s, %s, %s, %s, %s, 1) "
        "ON CONFLICT (day, currency, source, shard) DO UPDATE SET "
        "amount_minor = revenue.amount_minor + EXCLUDED.amount_minor, invoices = revenue.invoices + 1",
        [day, currency, source, shard_key % ROLLUP_SHARDS, amount_minor],
    )
