"""Atomic upserts that keep the usage rollup current inside the writing transaction."""

import datetime
from decimal import Decimal

from django.db import connection

from billing.models import UsageDaily

_PERSONAL_CONFLICT = "(user_id, day, service) WHERE org_id IS NULL"
_ORG_CONFLICT = "(user_id, org_id, day, service) WHERE org_id IS NOT NULL"


def usage_daily_add(
    *, user_id: int, org_id: int | None, day: datetime.date, service: str, credits: Decimal, units: int
) -> None:
    """Add one usage event; concurrent writers never lose an increment (ON CONFLICT DO UPDATE)."""
    table = UsageDaily._meta.db_table
    conflict = _ORG_CONFLICT if org_id is not None else _PERSONAL_CONFLICT
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} AS rollup (user_id, org_id, day, service, credits, units, events) "  # noqa: S608
            f"VALUES (%s, %s, %s, %s, %s, %s, 1) ON CONFLICT {conflict} DO UPDATE SET "
            "credits = rollup.credits + EXCLUDED.credits, units = rollup.units + EXCLUDED.units, "
            "events = rollup.events + 1",
            [user_id, org_id, day, service, credits, units],
        )
