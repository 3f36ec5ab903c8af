"""Appending to the ledger, and the personal debit that appends its own row.

Every balance change appends its row here, so this is also where a committed
row evicts the cached views it changed and is counted.
"""

from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from billing import rollups
from billing.changes import LEDGER_ROW, USAGE
from billing.models import CreditAccount, CreditTransaction
from billing.money import CREDITS_PARAM, credits_from_db, credits_sql
from ops_center import cache, metrics, replicas
from ops_center.idempotency_claims import CLAIM_INSERT, Claim

# Every column but the id, in model order: the INSERTs below are built once.
_LEDGER_FIELDS = [field for field in CreditTransaction._meta.concrete_fields if not field.primary_key]
_LEDGER_COLUMNS = ", ".join(field.column for field in _LEDGER_FIELDS)
_LEDGER_INSERT = (
    f"INSERT INTO {CreditTransaction._meta.db_table} ({_LEDGER_COLUMNS}) "  # noqa: S608 - our identifiers
    f"VALUES ({', '.join(['%s'] * len(_LEDGER_FIELDS))}) RETURNING id"
)


# What a row changed, for the cache: only a usage row moves the usage rollups.
_USAGE_ROW = (LEDGER_ROW, USAGE)
_OTHER_ROW = (LEDGER_ROW,)


def write_ledger(**fields: Any) -> CreditTransaction:
    """Append one ledger row: one INSERT ... RETURNING, without the ORM's save machinery (it is on every debit)."""
    row = CreditTransaction(**fields)
    with connection.cursor() as cursor:
        cursor.execute(_LEDGER_INSERT, _ledger_values(row))
        row.id = cursor.fetchone()[0]
    return _written(row)


def _ledger_values(row: CreditTransaction) -> list[Any]:
    return [field.get_db_prep_save(getattr(row, field.attname), connection) for field in _LEDGER_FIELDS]


def _written(row: CreditTransaction) -> CreditTransaction:
    """Once the transaction commits: evict the user's (and org's) cached views the row changed, and count it."""
    row._state.adding, row._state.db = False, connection.alias
    # Before the eviction (callbacks run in order): a read that misses after it must find the write position.
    replicas.note_write_on_commit(user_id=row.user_id, org_id=row.org_id)  # read-your-writes on replicas
    cache.invalidate_on_commit(
        user_ids=[row.user_id],
        org_ids=[row.org_id] if row.org_id else [],
        changed=_USAGE_ROW if row.transaction_type == CreditTransaction.Type.USAGE else _OTHER_ROW,
    )
    metrics.record_ledger_write(row.transaction_type)
    return row


def debit_personal_balance(
    *, user_id: int, cost: Decimal, service: str, units: int, **ledger_fields: Any
) -> tuple[CreditTransaction, Decimal, Decimal | None] | None:
    """Debit a personal balance for metered usage, with its ledger row and rollups; None when it falls short.

    Returns the ledger row, the balance after and the account's low-balance
    threshold, read by the same UPDATE (for billing.alerts, at no extra query).

    On PostgreSQL this is one statement: the conditional UPDATE feeds the
    ledger INSERT and the rollup upserts through a CTE, so a hot account's row
    lock is held for one round trip and the commit, not six. SQLite (the quick
    start) cannot modify data in a CTE, and takes the same steps one by one.
    """
    row = CreditTransaction(
        user_id=user_id, transaction_type=CreditTransaction.Type.USAGE, amount=-cost, **ledger_fields
    )
    if connection.vendor != "postgresql":
        return _debit_step_by_step(row, cost=cost, service=service, units=units)
    with connection.cursor() as cursor:
        cursor.execute(_ONE_STATEMENT_DEBIT, _one_statement_params(row, cost=cost, service=service, units=units))
        found = cursor.fetchone()
    if found is None:
        return None
    row.id, row.created_at, after = found[0], found[1], credits_from_db(found[2])
    row.credits_before, row.credits_after = after + cost, after
    return _written(row), after, found[3]


def debit_personal_balance_at_once(
    *, user_id: int, cost: Decimal, service: str, units: int, claim: Claim | None, **ledger_fields: Any
) -> tuple[CreditTransaction, Decimal] | None:
    """``debit_personal_balance`` as one statement that commits by itself, ``claim``'s record inside it.

    One round trip instead of four (BEGIN, the debit, the idempotency record,
    COMMIT), and a hot account's row lock held for that statement alone. For
    PostgreSQL outside any transaction only. None, having written nothing, when
    the debit must take ``debit_personal_balance``'s transaction instead: the
    balance falls short, or the debit would emit a low-balance or depleted
    alert, which must commit with it. Raises IntegrityError, having written
    nothing, when the claim's key (or the ledger's) is already taken.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        raise RuntimeError("a debit that commits by itself needs PostgreSQL and no surrounding transaction")
    row = CreditTransaction(
        user_id=user_id, transaction_type=CreditTransaction.Type.USAGE, amount=-cost, **ledger_fields
    )
    params = _one_statement_params(row, cost=cost, service=service, units=units)
    with connection.cursor() as cursor:
        if claim is None:
            cursor.execute(_QUIET_DEBIT, params)
        else:
            cursor.execute(_QUIET_CLAIMED_DEBIT, [*params, *claim.params()])
        found = cursor.fetchone()
    if found is None:
        return None
    row.id, row.created_at, after = found[0], found[1], credits_from_db(found[2])
    row.credits_before, row.credits_after = after + cost, after
    return _written(row), after


def _debit_step_by_step(
    row: CreditTransaction, *, cost: Decimal, service: str, units: int
) -> tuple[CreditTransaction, Decimal, Decimal | None] | None:
    with connection.cursor() as cursor:
        cursor.execute(ACCOUNT_BALANCE_CHANGE, [-cost, timezone.now(), row.user_id, -cost])
        found = cursor.fetchone()
    if found is None:
        return None
    after, threshold = credits_from_db(found[0]), found[1]
    # Stamped once the row lock is won, so time order follows the balance chain.
    row.credits_before, row.credits_after, row.created_at = after + cost, after, timezone.now()
    row = write_ledger(**{field.attname: getattr(row, field.attname) for field in _LEDGER_FIELDS})
    rollups.usage_recorded(
        user_id=row.user_id, org_id=None, day=row.created_at.date(), service=service, credits=cost, units=units
    )
    return row, after, threshold


_NEW_BALANCE = credits_sql(f"balance + {CREDITS_PARAM}")
# Params: signed change, now, user id, signed change. Returns the new balance and the low-balance
# threshold (webhook alerts, billing/alerts.py), or no row when the balance would go negative.
ACCOUNT_BALANCE_CHANGE = (
    f"UPDATE {CreditAccount._meta.db_table} SET balance = {_NEW_BALANCE}, updated_at = %s "  # noqa: S608
    f"WHERE user_id = %s AND {_NEW_BALANCE} >= 0 RETURNING balance, low_balance_threshold"
)
# The ledger row's before/after come from the UPDATE's RETURNING; every later part reads `debited`,
# so a debit that falls short (no row) writes nothing at all. The row is stamped with the
# account's updated_at, moved to the app's time or a microsecond past the last change,
# whichever is later: the statement may wait for the row lock, and history ordered by time
# must still follow the balance chain. The rollups take their day from that stamp.
_FROM_DEBIT = {"credits_before": "balance + %s", "credits_after": "balance", "created_at": "updated_at"}
_LEDGER_FROM_DEBIT = [_FROM_DEBIT.get(field.attname, "%s") for field in _LEDGER_FIELDS]
_UTC_DAY = "(ledger.created_at AT TIME ZONE 'UTC')::date"


def _debit_statement(*, floor: str, claim: str = "") -> str:
    """The personal debit as one statement: the account's UPDATE, when the new balance is above ``floor``,
    feeds the ledger row, the rollups and ``claim`` (more CTEs, reading ``ledger``)."""
    return (
        f"WITH debited AS (UPDATE {CreditAccount._meta.db_table} SET balance = {_NEW_BALANCE}, "  # noqa: S608
        "updated_at = GREATEST(%s, updated_at + interval '1 microsecond') "
        f"WHERE user_id = %s AND {_NEW_BALANCE} {floor} RETURNING balance, updated_at, low_balance_threshold), "
        f"ledger AS (INSERT INTO {CreditTransaction._meta.db_table} ({_LEDGER_COLUMNS}) "
        f"SELECT {', '.join(_LEDGER_FROM_DEBIT)} FROM debited RETURNING id, created_at), "
        f"usage AS ({rollups.USAGE_INSERT} SELECT %s, NULL, {_UTC_DAY}, %s, %s, %s, 1 FROM ledger "
        f"{rollups.usage_on_conflict(org_billed=False)}), "
        f"activity AS ({rollups.USER_ACTIVITY_INSERT} SELECT %s, {_UTC_DAY} FROM ledger, usage "
        f"WHERE usage.events = 1 {rollups.USER_ACTIVITY_ON_CONFLICT}), "
        f"flow AS ({rollups.FLOW_INSERT} SELECT {_UTC_DAY}, %s, 0, %s, 0, 0 FROM ledger {rollups.FLOW_ON_CONFLICT})"
        f"{claim} "
        # The threshold rides along for the low-balance alert: no query of its own.
        "SELECT ledger.id, ledger.created_at, debited.balance, debited.low_balance_threshold FROM ledger, debited"
    )


_ONE_STATEMENT_DEBIT = _debit_statement(floor=">= 0")
# A debit that commits by itself cannot emit an alert in its transaction, so it leaves alone a
# balance that would reach 0 or fall from above its low-balance threshold to at or below it
# (billing.alerts: crossed, depleted): the new balance must stay above both. GREATEST skips a
# NULL, so without a threshold, or from a balance already at or below it, the floor is 0.
_QUIET_FLOOR = "> GREATEST(0, CASE WHEN balance > low_balance_threshold THEN low_balance_threshold END)"
_QUIET_DEBIT = _debit_statement(floor=_QUIET_FLOOR)
_QUIET_CLAIMED_DEBIT = _debit_statement(floor=_QUIET_FLOOR, claim=f", claimed AS ({CLAIM_INSERT} FROM ledger)")


def _one_statement_params(row: CreditTransaction, *, cost: Decimal, service: str, units: int) -> list:
    ledger = [
        cost if field.attname == "credits_before" else value
        for field, value in zip(_LEDGER_FIELDS, _ledger_values(row), strict=True)
        if field.attname not in ("credits_after", "created_at")
    ]
    return [
        *(-cost, timezone.now(), row.user_id, -cost),
        *ledger,
        *(row.user_id, service, cost, units),
        row.user_id,
        *(rollups.flow_shard(row.user_id), cost),
    ]
