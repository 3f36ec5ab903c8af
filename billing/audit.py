"""The ledger audit: every stored total against the ledger rows that explain it.

What moves which balance (billing.services, billing.cycles):
* rows without an org move the user's personal balance (CreditAccount);
* rows with an org move the user's allocation in that org's pool: ``allocation``
  rows change what is allocated, ``usage`` rows what is used, and their
  before/after is what the allocation has left;
* ``refresh`` and ``expiry`` rows with an org move the pool's total, booked
  under the org's billing contact, so that chain runs per org, whoever the
  contact was.

Each check is a few SQL aggregates (window functions for the chains), over one
range of user ids at a time so a caller can show progress; Python only formats
what differs. Amounts are compared rounded to the credit precision, which is
a no-op on PostgreSQL's numeric and absorbs SQLite's binary floats.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection

from billing.models import CreditAccount, CreditAllocation, CreditPool, CreditTransaction, UserActivity
from billing.money import credits_from_db, credits_sql
from billing.rollup_rebuild import REGISTRY, Rollup, months_between
from orgs.models import User

LEDGER = CreditTransaction._meta.db_table
ACCOUNTS = CreditAccount._meta.db_table
ALLOCATIONS = CreditAllocation._meta.db_table
POOLS = CreditPool._meta.db_table
# The rows that move a pool's total rather than any user's balance or allocation.
POOL_TOTAL_TYPES = (CreditTransaction.Type.REFRESH.value, CreditTransaction.Type.EXPIRY.value)
# About 20 batches: each moves the progress bar, and each reads its users' rows in one pass.
BATCHES = 20
MIN_USERS_PER_BATCH = 1000


@dataclass
class Findings:
    """What differs: the first ``limit`` described, the rest only counted."""

    limit: int
    listed: list[str] = field(default_factory=list)
    total: int = 0

    def add(self, message: str) -> None:
        self.total += 1
        if len(self.listed) < self.limit:
            self.listed.append(message)

    @property
    def unlisted(self) -> int:
        return self.total - len(self.listed)


Step = Callable[[Findings], None]


def audit_steps(*, days: tuple[datetime.date, datetime.date] | None) -> list[Step]:
    """The audit as steps of similar cost: ledger batches by user id, pools, then the rollups month by month."""
    steps: list[Step] = [_user_batch(first, end) for first, end in user_id_batches()]
    steps.append(audit_pools)
    if days is not None:
        steps.extend(_rollup_month(start, end) for start, end in months_between(*days))
    return steps


def user_id_batches() -> list[tuple[int, int]]:
    """[first, end) ranges of user ids covering every user (ledger rows and accounts all belong to one)."""
    bounds = User.objects.order_by("pk").values_list("pk", flat=True)
    first, last = bounds.first(), bounds.last()
    if first is None or last is None:  # no users: both are None
        return []
    size = max(MIN_USERS_PER_BATCH, -(-(last - first + 1) // BATCHES))
    return [(start, min(start + size, last + 1)) for start in range(first, last + 1, size)]


def _user_batch(first: int, end: int) -> Step:
    return lambda findings: audit_users(first_id=first, end_id=end, findings=findings)


def _rollup_month(start: datetime.date, end: datetime.date) -> Step:
    return lambda findings: audit_rollups(start=start, end=end, findings=findings)


# The users' ledger rows, each with the after of the row before it in its
# stream: the personal balance (org NULL) or one allocation (user, org).
_USER_ROWS = f"""
    SELECT id, user_id, org_id, transaction_type, amount, credits_before,
           LAG(credits_after) OVER (PARTITION BY user_id, org_id ORDER BY id) AS previous_after
    FROM {LEDGER}
    WHERE user_id >= %s AND user_id < %s AND NOT (org_id IS NOT NULL AND transaction_type IN (%s, %s))
"""  # noqa: S608 - our identifiers
# Typed, or PostgreSQL resolves a column that is NULL in the first two branches of the UNION as text.
_NO_AMOUNT = "CAST(NULL AS NUMERIC)"
# kind, user, org, row, then stored and computed values; every stream starts at zero.
_CHAIN = f"""
    SELECT 'chain', user_id, org_id, id, {credits_sql("credits_before")}, {credits_sql("previous_after")}, {_NO_AMOUNT},
           {_NO_AMOUNT}
    FROM batch WHERE {credits_sql("credits_before")} <> {credits_sql("COALESCE(previous_after, 0)")}
"""  # noqa: S608
_BALANCES = f"""
    SELECT 'balance', COALESCE(account.user_id, personal.user_id), NULL, NULL,
           {credits_sql("account.balance")}, {credits_sql("COALESCE(personal.total, 0)")}, {_NO_AMOUNT}, {_NO_AMOUNT}
    FROM (SELECT user_id, balance FROM {ACCOUNTS} WHERE user_id >= %s AND user_id < %s) account
    FULL JOIN (SELECT user_id, SUM(amount) AS total FROM batch WHERE org_id IS NULL GROUP BY user_id) personal
      ON personal.user_id = account.user_id
    WHERE account.user_id IS NULL OR {credits_sql("account.balance")} <> {credits_sql("COALESCE(personal.total, 0)")}
"""  # noqa: S608
_ALLOCATION_SUMS = """
    SELECT user_id, org_id,
           SUM(CASE WHEN transaction_type = %s THEN amount ELSE 0 END) AS allocated,
           -SUM(CASE WHEN transaction_type = %s THEN amount ELSE 0 END) AS used
    FROM batch WHERE org_id IS NOT NULL GROUP BY user_id, org_id
"""
_ALLOCATIONS = f"""
    SELECT 'allocation', COALESCE(stored.user_id, ledger.user_id), COALESCE(stored.org_id, ledger.org_id), NULL,
           {credits_sql("stored.allocated_credits")}, {credits_sql("COALESCE(ledger.allocated, 0)")},
           {credits_sql("stored.used_credits")}, {credits_sql("COALESCE(ledger.used, 0)")}
    FROM (SELECT allocation.user_id, pool.org_id, allocation.allocated_credits, allocation.used_credits
          FROM {ALLOCATIONS} allocation JOIN {POOLS} pool ON pool.id = allocation.pool_id
          WHERE allocation.user_id >= %s AND allocation.user_id < %s) stored
    FULL JOIN ({_ALLOCATION_SUMS}) ledger ON ledger.user_id = stored.user_id AND ledger.org_id = stored.org_id
    WHERE stored.user_id IS NULL
       OR {credits_sql("stored.allocated_credits")} <> {credits_sql("COALESCE(ledger.allocated, 0)")}
       OR {credits_sql("stored.used_credits")} <> {credits_sql("COALESCE(ledger.used, 0)")}
"""  # noqa: S608
_USER_BATCH = (
    f"WITH batch AS ({_USER_ROWS}) {_CHAIN} UNION ALL {_BALANCES} UNION ALL {_ALLOCATIONS} ORDER BY 2, 1, 3, 4"
)


def audit_users(*, first_id: int, end_id: int, findings: Findings) -> None:
    """Balances, allocations and both kinds of chain, for the users with ids in [first_id, end_id)."""
    allocation, usage = CreditTransaction.Type.ALLOCATION.value, CreditTransaction.Type.USAGE.value
    # In the order the placeholders appear: the batch, the accounts, the allocations, then the ledger's sums.
    params = (first_id, end_id, *POOL_TOTAL_TYPES, first_id, end_id, first_id, end_id, allocation, usage)
    with connection.cursor() as cursor:
        cursor.execute(_USER_BATCH, params)
        for kind, user_id, org_id, row_id, stored, computed, stored_used, computed_used in cursor.fetchall():
            findings.add(
                _describe_user_finding(
                    kind, user_id, org_id, row_id, _amount(stored), _amount(computed), _amount(stored_used),
                    _amount(computed_used),
                )
            )  # fmt: skip


def _amount(value) -> Decimal | None:
    return None if value is None else credits_from_db(value)


def _describe_user_finding(kind, user_id, org_id, row_id, stored, computed, stored_used, computed_used) -> str:
    if kind == "chain":
        where = f"user {user_id}" + (f" org {org_id}" if org_id is not None else "")
        follows = "does not start at 0.0000" if computed is None else f"does not follow {computed}"
        return f"{where} row {row_id}: credits_before {stored} {follows}"
    if kind == "balance":
        if stored is None:
            return f"user {user_id}: no credit account but ledger sums to {computed}"
        return f"user {user_id}: balance {stored} but ledger sums to {computed}"
    where = f"user {user_id} org {org_id}"
    if stored is None:
        return f"{where}: no allocation but the ledger allocates {computed} and uses {computed_used}"
    differences = []
    if stored != computed:
        differences.append(f"allocated {stored} but allocation rows sum to {computed}")
    if stored_used != computed_used:
        differences.append(f"used {stored_used} but org usage sums to {computed_used}")
    return f"{where}: {'; '.join(differences)}"


# Pool totals chain per org from the first refresh or expiry row on; a pool
# may have started with credits the ledger does not show (a bulk load).
_POOL_CHAIN = f"""
    SELECT org_id, id, {credits_sql("credits_before")}, {credits_sql("previous_after")}
    FROM (SELECT org_id, id, credits_before,
                 LAG(credits_after) OVER (PARTITION BY org_id ORDER BY id) AS previous_after
          FROM {LEDGER} WHERE org_id IS NOT NULL AND transaction_type IN (%s, %s)) refreshes
    WHERE previous_after IS NOT NULL AND {credits_sql("credits_before")} <> {credits_sql("previous_after")}
    ORDER BY org_id, id
"""  # noqa: S608
_SUMMED_ALLOCATED = credits_sql("COALESCE(SUM(allocation.allocated_credits), 0)")
_SUMMED_USED = credits_sql("COALESCE(SUM(allocation.used_credits), 0)")
_POOL_TOTALS = f"""
    SELECT pool.org_id, {credits_sql("pool.allocated_credits")}, {_SUMMED_ALLOCATED},
           {credits_sql("pool.used_credits")}, {_SUMMED_USED}
    FROM {POOLS} pool LEFT JOIN {ALLOCATIONS} allocation ON allocation.pool_id = pool.id
    GROUP BY pool.id, pool.org_id, pool.allocated_credits, pool.used_credits
    HAVING {credits_sql("pool.allocated_credits")} <> {_SUMMED_ALLOCATED}
        OR {credits_sql("pool.used_credits")} <> {_SUMMED_USED}
    ORDER BY pool.org_id
"""  # noqa: S608


def audit_pools(findings: Findings) -> None:
    """Each pool's allocated and used against its allocations, and its total's chain."""
    with connection.cursor() as cursor:
        cursor.execute(_POOL_TOTALS)
        for org_id, *amounts in cursor.fetchall():
            allocated, allocations_allocated, used, allocations_used = map(credits_from_db, amounts)
            if allocated != allocations_allocated:
                findings.add(
                    f"org {org_id} pool: allocated {allocated} but its allocations sum to {allocations_allocated}"
                )
            if used != allocations_used:
                findings.add(f"org {org_id} pool: used {used} but its allocations' used sum to {allocations_used}")
        cursor.execute(_POOL_CHAIN, list(POOL_TOTAL_TYPES))
        for org_id, row_id, before, previous_after in cursor.fetchall():
            findings.add(
                f"org {org_id} row {row_id}: pool credits_before {credits_from_db(before)} "
                f"does not follow {credits_from_db(previous_after)}"
            )


def audit_rollups(*, start: datetime.date, end: datetime.date, findings: Findings) -> None:
    """Every rollup's rows for the days in [start, end) against their recomputation from the ledger."""
    for rollup in REGISTRY.values():
        if rollup.model is UserActivity:
            _audit_user_activity(rollup, start, end, findings)
        else:
            _audit_daily(rollup, start, end, findings)


def _audit_daily(rollup: Rollup, start: datetime.date, end: datetime.date, findings: Findings) -> None:
    """A full join on the key: a row on one side only, or with different values, is a difference."""
    computed, computed_params = rollup.computed_sql(start, end)
    stored, stored_params = rollup.stored(start, end).values(*rollup.columns).query.sql_with_params()
    # COALESCE rather than IS NOT DISTINCT FROM: PostgreSQL can hash-join on the one, not the other.
    on = " AND ".join(
        f"COALESCE(stored.{key}, 0) = COALESCE(computed.{key}, 0)" if rollup.field(key).null
        else f"stored.{key} = computed.{key}"
        for key in rollup.keys
    )  # fmt: skip
    differs = " OR ".join(
        f"{credits_sql(f'stored.{name}')} <> {credits_sql(f'computed.{name}')}"
        if _is_credits(rollup, name)
        else f"stored.{name} <> computed.{name}"
        for name in rollup.values
    )  # fmt: skip
    # Never NULL in a row that exists: it tells a row on one side only.
    first_key = rollup.keys[0]
    select = [
        *(f"COALESCE(stored.{key}, computed.{key})" for key in rollup.keys),
        f"stored.{first_key} IS NOT NULL",
        f"computed.{first_key} IS NOT NULL",
        *(f"{side}.{name}" for side in ("stored", "computed") for name in rollup.values),
    ]
    sql = (
        f"SELECT {', '.join(select)} FROM ({stored}) stored FULL JOIN ({computed}) computed ON {on} "  # noqa: S608
        f"WHERE stored.{first_key} IS NULL OR computed.{first_key} IS NULL OR {differs} "
        f"ORDER BY {', '.join(str(position) for position in range(1, len(rollup.keys) + 1))}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*stored_params, *computed_params])
        rows = cursor.fetchall()
    keys, values = len(rollup.keys), len(rollup.values)
    for row in rows:
        label = _show(rollup, rollup.keys, row[:keys], separator=" ")
        in_table, in_ledger = row[keys : keys + 2]
        stored_values = _show(rollup, rollup.values, row[keys + 2 : keys + 2 + values])
        computed_values = _show(rollup, rollup.values, row[keys + 2 + values :])
        if not in_table:
            difference = f"missing, the ledger gives {computed_values}"
        elif not in_ledger:
            difference = f"{stored_values} but nothing in the ledger"
        else:
            difference = f"{stored_values} but the ledger gives {computed_values}"
        findings.add(f"{rollup.table} {label}: {difference}")


def _show(rollup: Rollup, columns: tuple[str, ...], values: tuple, separator: str = ", ") -> str:
    return separator.join(
        f"{column} {_rollup_value(rollup, column, value)}" for column, value in zip(columns, values, strict=True)
    )


def _rollup_value(rollup: Rollup, column: str, value) -> str:
    """By the column's type: PostgreSQL sums integers into numeric; SQLite's credits and MOD() are floats."""
    field = rollup.field(column)
    if value is None:
        return "none"
    if _is_credits(rollup, column):
        return str(credits_from_db(value))
    if field.is_relation or field.get_internal_type().endswith("IntegerField"):
        return str(int(value))
    return str(value)


def _is_credits(rollup: Rollup, column: str) -> bool:
    return rollup.field(column).get_internal_type() == "DecimalField"


def _audit_user_activity(rollup: Rollup, start: datetime.date, end: datetime.date, findings: Findings) -> None:
    """A user's last usage day: never before their last usage in the range, and within it only that day.

    A stored day after the range is right as far as these days can tell.
    """
    computed, computed_params = rollup.computed_sql(start, end)
    stored_rows = UserActivity.objects.filter(last_usage_on__gte=start).values("user_id", "last_usage_on")
    stored, stored_params = stored_rows.query.sql_with_params()
    sql = (
        "SELECT COALESCE(stored.user_id, computed.user_id), stored.last_usage_on, computed.last_usage_on "  # noqa: S608
        f"FROM ({stored}) stored FULL JOIN ({computed}) computed ON computed.user_id = stored.user_id "
        "WHERE stored.user_id IS NULL OR (stored.last_usage_on < %s "
        "AND (computed.user_id IS NULL OR stored.last_usage_on <> computed.last_usage_on)) ORDER BY 1"
    )
    params = [*stored_params, *computed_params, connection.ops.adapt_datefield_value(end)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    last_day = end - datetime.timedelta(days=1)
    for user_id, stored_day, computed_day in rows:
        if stored_day is None:
            difference = f"no last usage on or after {start} but the ledger has usage on {computed_day}"
        elif computed_day is None:
            difference = f"last usage {stored_day} but the ledger has none from {start} to {last_day}"
        else:
            difference = f"last usage {stored_day} but the ledger's last from {start} to {last_day} is {computed_day}"
        findings.add(f"{rollup.table} user {user_id}: {difference}")
