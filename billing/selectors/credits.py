"""Reads for the credit endpoints. The hot ones are cached (cache-aside)."""

import datetime
import itertools
from decimal import Decimal
from typing import TypedDict

from django.conf import settings
from django.db import connections, router
from django.db.models import F, QuerySet, Sum
from django.utils import timezone

from billing.changes import ALLOCATION, LEDGER_ROW, USAGE
from billing.models import CreditAccount, CreditAllocation, CreditPool, CreditTransaction, PricingRule, UsageDaily
from billing.money import ZERO_CREDITS, credits_from_db, to_credits
from ops_center import cache, replicas
from ops_center.api.pagination import DEFAULT_LIMIT, encode_cursor, keyset_page
from orgs.models import Organization


def balance_key(*, user_id: int) -> tuple:
    return ("credit_balance", cache.user_part(user_id), "balance")


def usage_summary_key(*, user_id: int) -> tuple:
    return ("credit_balance", cache.user_part(user_id), "usage_summary_30d")


def history_pages_key(*, user_id: int) -> tuple:
    return ("credit_balance", cache.user_part(user_id), "transactions_first_pages")


def balance_with_allocations(*, user_id: int) -> tuple[dict, bool]:
    """The balance endpoint's payload, cached. Returns (data, cache hit).

    The data holds the personal balance (``personal_balance_amount``), each org
    allocation with what remains of it, and the total available.
    """
    return cache.get_or_set(*balance_key(user_id=user_id), compute=lambda: _balance_from_db(user_id=user_id))


# The personal balance beside each allocation, in one statement (it is recomputed after every write
# to a user who reads it): one row with NULL allocation columns when there is none, and a NULL balance
# when there is no account yet.
_BALANCE_SQL = (
    f"SELECT (SELECT balance FROM {CreditAccount._meta.db_table} WHERE user_id = %s), "  # noqa: S608 - our tables
    "pool.org_id, org.name, allocation.allocated_credits, allocation.used_credits "
    f"FROM (SELECT 1) AS one LEFT JOIN {CreditAllocation._meta.db_table} AS allocation ON allocation.user_id = %s "
    f"LEFT JOIN {CreditPool._meta.db_table} AS pool ON pool.id = allocation.pool_id "
    f"LEFT JOIN {Organization._meta.db_table} AS org ON org.id = pool.org_id "
    "ORDER BY pool.org_id"
)


def _balance_from_db(*, user_id: int) -> dict:
    with connections[router.db_for_read(CreditAccount)].cursor() as cursor:
        cursor.execute(_BALANCE_SQL, [user_id, user_id])
        rows = cursor.fetchall()
    personal = credits_from_db(rows[0][0]) if rows[0][0] is not None else ZERO_CREDITS
    allocations = []
    for _, org_id, org_name, allocated_raw, used_raw in rows:
        if org_id is None:
            continue
        allocated, used = credits_from_db(allocated_raw), credits_from_db(used_raw)
        allocations.append(
            {
                "org_id": org_id,
                "org_name": org_name,
                "allocated": allocated,
                "used": used,
                "remaining": allocated - used,
            }
        )
    return {
        "balance": personal,
        "allocations": allocations,
        "total_available": personal + sum((row["remaining"] for row in allocations), ZERO_CREDITS),
    }


def personal_balance_amount(*, user_id: int) -> Decimal:
    """The user's own credit account balance, uncached; org allocations are not in it."""
    balance = CreditAccount.objects.filter(user_id=user_id).values_list("balance", flat=True).first()
    return balance if balance is not None else ZERO_CREDITS


def ledger_row_by_key(*, user_id: int, idempotency_key: str) -> CreditTransaction:
    """The ledger row a keyed write left (one per user and key, by the ledger's unique constraint)."""
    return CreditTransaction.objects.using(router.db_for_write(CreditTransaction)).get(
        user_id=user_id, idempotency_key=idempotency_key
    )


def allocation_remaining(*, user_id: int, org_id: int) -> Decimal:
    remaining = (
        CreditAllocation.objects.filter(user_id=user_id, pool__org_id=org_id)
        .values_list(F("allocated_credits") - F("used_credits"), flat=True)
        .first()
    )
    # An expression, not a column: SQLite returns it unrounded.
    return to_credits(remaining) if remaining is not None else ZERO_CREDITS


class PricingRuleRow(TypedDict):
    service: str
    credits_per_unit: Decimal


def pricing_rule(*, service: str) -> PricingRuleRow | None:
    """The active rule for a service, cached in the pricing_rules namespace."""
    rule, _ = cache.get_or_set(
        *pricing_rule_key(service=service), compute=lambda: _pricing_rule_from_db(service=service)
    )
    return rule


def pricing_rule_key(*, service: str) -> tuple[str, str]:
    return ("pricing_rules", pricing_rule_part(service=service))


def pricing_rule_part(*, service: str) -> str:
    return f"service_{service}"


def _pricing_rule_from_db(*, service: str) -> PricingRuleRow | None:
    return PricingRule.objects.filter(service=service, is_active=True).values("service", "credits_per_unit").first()


def custom_credits_price(*, credits: Decimal) -> tuple[int, str]:
    """Price of a custom purchase in minor units, rounded up to the next cent."""
    unit_price = Decimal(settings.CUSTOM_CREDITS_PRICE_MINOR_PER_CREDIT)
    return int(-((-credits * unit_price) // 1)), settings.CUSTOM_CREDITS_CURRENCY


DEFAULT_SUMMARY_DAYS = 30


def usage_summary(*, user_id: int, days: int) -> tuple[dict, bool]:
    """Credits used per day and per service over the last ``days`` days, from the rollup.

    The default 30-day window is cached; other windows are rare and read directly.
    Returns (data, cache hit).
    """
    if days != DEFAULT_SUMMARY_DAYS:
        return _usage_summary_from_db(user_id=user_id, days=days), False
    return cache.get_or_set(
        *usage_summary_key(user_id=user_id), compute=lambda: _usage_summary_from_db(user_id=user_id, days=days)
    )


def _usage_summary_from_db(*, user_id: int, days: int) -> dict:
    today = timezone.now().date()
    first_day = today - datetime.timedelta(days=days - 1)
    daily = UsageDaily.objects.filter(user_id=user_id, day__gte=first_day)
    query = daily.values("day", "service").annotate(credits=Sum("credits"), units=Sum("units"), events=Sum("events"))
    rows = replicas.read(lambda: list(query), user_id=user_id)  # a caught-up replica, else the primary
    per_day = {first_day + datetime.timedelta(days=offset): ZERO_CREDITS for offset in range(days)}
    per_service: dict[str, dict] = {}
    for row in rows:
        row["credits"] = to_credits(row["credits"])  # a sum: SQLite returns it unrounded
        per_day[row["day"]] = per_day.get(row["day"], ZERO_CREDITS) + row["credits"]
        totals = per_service.setdefault(
            row["service"], {"service": row["service"], "credits": ZERO_CREDITS, "units": 0, "events": 0}
        )
        totals["credits"] += row["credits"]
        totals["units"] += row["units"]
        totals["events"] += row["events"]
    return {
        "days": days,
        "start_date": first_day,
        "end_date": today,
        "total_credits": sum(per_day.values(), ZERO_CREDITS),
        "by_day": [{"date": day, "credits": credits} for day, credits in sorted(per_day.items())],
        "by_service": sorted(per_service.values(), key=lambda totals: totals["credits"], reverse=True),
    }


TRANSACTION_COLUMNS = (
    "id",
    "transaction_type",
    "amount",
    "credits_before",
    "credits_after",
    "description",
    "org_id",
    "created_at",
)


# The first page is cached with the next ones behind it: a client that reads its history pages on
# from the first page (nearly every one) reads them from the cache. One query fetches all of them.
CACHED_PAGES = 3


def transactions_page(
    *,
    user_id: int,
    limit: int,
    cursor: str | None = None,
    transaction_type: str | None = None,
    created_after: datetime.datetime | None = None,
    created_before: datetime.datetime | None = None,
) -> tuple[dict, bool]:
    """One page of the caller's ledger as ``{"results", "next_cursor"}``; returns (page, cache hit).

    The unfiltered history in pages of the default size is what almost every
    client reads, so its first ``CACHED_PAGES`` pages are cached together, as
    one entry; any other page is one index scan.
    """
    queryset = CreditTransaction.objects.filter(user_id=user_id)
    if transaction_type:
        queryset = queryset.filter(transaction_type=transaction_type)
    if created_after:
        queryset = queryset.filter(created_at__gte=created_after)
    if created_before:
        queryset = queryset.filter(created_at__lt=created_before)
    if limit != DEFAULT_LIMIT or transaction_type or created_after or created_before:
        return _page(queryset, user_id=user_id, limit=limit, cursor=cursor), False
    if cursor is not None:
        # Counted as a hit only when the page is served from the entry (the fast path reads it the same way).
        entries = cache.get_entries([history_pages_key(user_id=user_id)])
        page = cached_page_after(pages=entries[0][1], cursor=cursor) if entries else None
        if page is not None:
            cache.record_hits(["credit_balance"])
            return page, True
        return _page(queryset, user_id=user_id, limit=limit, cursor=cursor), False
    pages, hit = cache.get_or_set(
        *history_pages_key(user_id=user_id), compute=lambda: _first_pages_from_db(user_id=user_id)
    )
    return pages[0], hit


def cached_page_after(*, pages: list[dict] | None, cursor: str) -> dict | None:
    """The cached page that follows the one whose ``next_cursor`` is ``cursor``, if it is cached."""
    for previous, following in itertools.pairwise(pages or []):
        if previous["next_cursor"] == cursor:
            return following
    return None


def _first_pages_from_db(*, user_id: int) -> list[dict]:
    """The first ``CACHED_PAGES`` pages of the default size, cut from one query, each as its request gets it."""
    queryset = CreditTransaction.objects.filter(user_id=user_id).values(*TRANSACTION_COLUMNS)
    rows, last_cursor = replicas.read(
        lambda: keyset_page(queryset, cursor=None, limit=DEFAULT_LIMIT * CACHED_PAGES), user_id=user_id
    )
    pages = []
    for start in range(0, max(len(rows), 1), DEFAULT_LIMIT):
        results = rows[start : start + DEFAULT_LIMIT]
        more = start + DEFAULT_LIMIT < len(rows)
        next_cursor = encode_cursor(results[-1]) if more else None
        pages.append({"results": results, "next_cursor": next_cursor})
    pages[-1]["next_cursor"] = last_cursor  # None unless rows lie beyond the cached pages
    return pages


def _page(queryset: QuerySet[CreditTransaction], *, user_id: int, limit: int, cursor: str | None = None) -> dict:
    rows, next_cursor = replicas.read(  # a caught-up replica, else the primary
        lambda: keyset_page(queryset.values(*TRANSACTION_COLUMNS), cursor=cursor, limit=limit), user_id=user_id
    )
    return {"results": rows, "next_cursor": next_cursor}


def most_active_user_ids(*, limit: int, days: int = 7) -> list[int]:
    """Users with the most usage events lately, busiest first (from the rollup, not the ledger)."""
    since = timezone.now().date() - datetime.timedelta(days=days)
    return list(
        UsageDaily.objects.filter(day__gte=since)
        .values("user_id")
        .annotate(events=Sum("events"))
        .order_by("-events", "user_id")
        .values_list("user_id", flat=True)[:limit]
    )


def _default_usage_summary_from_db(*, user_id: int) -> dict:
    return _usage_summary_from_db(user_id=user_id, days=DEFAULT_SUMMARY_DAYS)


def register_cached_views() -> None:
    """The cached views of a user's credit data: a write that changes one evicts it, and refills it if in use."""
    cache.register_view("user", key=balance_key, compute=_balance_from_db, changed_by=[LEDGER_ROW, ALLOCATION])
    cache.register_view("user", key=usage_summary_key, compute=_default_usage_summary_from_db, changed_by=[USAGE])
    cache.register_view("user", key=history_pages_key, compute=_first_pages_from_db, changed_by=[LEDGER_ROW])


def warm_user(*, user_id: int) -> None:
    """Recompute and store every cached view of one user's credit data."""
    cache.warm("user", user_id)
