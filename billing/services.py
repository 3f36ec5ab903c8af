"""Writes that move credits. Each is one database transaction.

Concurrency rules:
* a balance or allocation changes only through one conditional UPDATE
  (``... WHERE balance + delta >= 0 RETURNING balance``), so two requests can
  never both spend the same credits, and no row is read-then-written;
* when both are touched, the allocation row is updated before its pool row,
  everywhere, so concurrent writers cannot deadlock;
* every change writes its ledger row in the same transaction, with the
  before/after values the UPDATE returned.
"""

import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from billing import alerts, rollups, selectors
from billing.errors import (
    InsufficientCredits,
    InvalidAdjustment,
    InvalidCost,
    OrgNotFound,
    UnknownPackage,
    UnknownService,
)
from billing.ledger import (
    ACCOUNT_BALANCE_CHANGE,
    debit_personal_balance,
    debit_personal_balance_at_once,
    write_ledger,
)
from billing.models import CreditAccount, CreditAllocation, CreditPackage, CreditPool, CreditTransaction, Invoice
from billing.money import CREDIT_MAX_VALUE, CREDITS_PARAM, ZERO_CREDITS, credits_from_db, credits_sql, to_credits
from billing.payments import get_gateway
from ops_center.idempotency_claims import Claim
from orgs.models import User
from orgs.selectors import membership_role
from webhooks.models import EventType


@dataclass(frozen=True)
class CreditsResult:
    transaction: CreditTransaction
    balance: Decimal
    invoice: Invoice | None = None


@dataclass(frozen=True)
class PurchaseResult(CreditsResult):
    """A purchase always has its invoice."""

    invoice: Invoice


def _apply_to_account(*, user_id: int, delta: Decimal) -> tuple[Decimal, Decimal, Decimal | None] | None:
    """Add ``delta`` (signed) to a balance unless it would go negative.

    Returns (before, after, low-balance threshold), or None when the balance does not cover a debit.
    """
    with connection.cursor() as cursor:
        cursor.execute(ACCOUNT_BALANCE_CHANGE, [delta, timezone.now(), user_id, delta])
        row = cursor.fetchone()
        if row is None and delta > 0:
            # First credit of this user: create the account, then apply.
            CreditAccount.objects.bulk_create([CreditAccount(user_id=user_id)], ignore_conflicts=True)
            cursor.execute(ACCOUNT_BALANCE_CHANGE, [delta, timezone.now(), user_id, delta])
            row = cursor.fetchone()
    if row is None:
        return None
    after = credits_from_db(row[0])
    return after - delta, after, row[1]


@transaction.atomic
def credits_purchase(
    *,
    user: User,
    package_code: str | None = None,
    credits: Decimal | None = None,
    idempotency_key: str | None = None,
) -> PurchaseResult:
    """Buy a package, or a custom whole number of credits at the configured unit price."""
    if package_code is not None:
        package = CreditPackage.objects.filter(code=package_code, is_active=True).first()
        if package is None:
            raise UnknownPackage(details={"package": package_code})
        credits, price_minor, currency, label = package.credits, package.price_minor, package.currency, package.name
    else:
        credits = to_credits(credits)
        price_minor, currency = selectors.custom_credits_price(credits=credits)
        label = f"{credits.normalize():f} credit{'' if credits == 1 else 's'}"

    credited = _apply_to_account(user_id=user.pk, delta=credits)
    if credited is None:  # only a debit can fall short; a credit creates the account if need be
        raise RuntimeError(f"crediting user {user.pk} changed no balance")
    before, after, _threshold = credited
    # Charged inside the transaction: a decline raises and rolls back everything
    # above. With the client's Idempotency-Key the gateway's key survives a
    # rollback, so a retried request is never charged twice; without one, each
    # request is new. The invoice and the ledger row follow, so each is written
    # once, complete: an invoice is only ever stored paid.
    gateway_key = f"purchase-{user.pk}-{idempotency_key or uuid.uuid4().hex}"
    charge = get_gateway().charge(
        amount_minor=price_minor, currency=currency, description=label, idempotency_key=gateway_key
    )
    paid_at = timezone.now()
    invoice = Invoice.objects.create(
        source=Invoice.Source.CREDIT_PURCHASE,
        user=user,
        amount_minor=price_minor,
        currency=currency,
        credits=credits,
        status=Invoice.Status.PAID,
        paid_at=paid_at,
    )
    ledger_row = write_ledger(
        user_id=user.pk,
        transaction_type=CreditTransaction.Type.PURCHASE,
        amount=credits,
        credits_before=before,
        credits_after=after,
        description=f"Purchase: {label}",
        metadata={
            "invoice_id": invoice.pk,
            "package": package_code,
            "price_minor": price_minor,
            "currency": currency,
            "payment_reference": charge.reference,
        },
        idempotency_key=idempotency_key,
    )
    rollups.revenue_recorded(
        day=paid_at.date(),
        currency=currency,
        source=Invoice.Source.CREDIT_PURCHASE,
        amount_minor=price_minor,
        shard_key=user.pk,
    )
    rollups.credits_flowed(day=ledger_row.created_at.date(), shard_key=user.pk, purchased=credits)
    alerts.credits_added(
        kind=EventType.CREDITS_PURCHASED,
        user_id=user.pk,
        amount=credits,
        after=after,
        transaction_id=ledger_row.id,
        invoice_id=invoice.pk,
        package=package_code,
    )
    return PurchaseResult(transaction=ledger_row, balance=after, invoice=invoice)


def credits_consume(
    *,
    user: User,
    service: str,
    units: int,
    credits: Decimal | None = None,
    org_id: int | None = None,
    description: str = "",
    idempotency_key: str | None = None,
) -> CreditsResult:
    """Meter usage: debit the personal balance, or the caller's allocation in ``org_id``."""
    cost, ledger_fields = _priced_usage(
        service=service, units=units, credits=credits, description=description, idempotency_key=idempotency_key
    )
    if org_id is None:
        return _consume_personal(user_id=user.pk, cost=cost, service=service, units=units, ledger_fields=ledger_fields)
    return _consume_from_allocation(
        user_id=user.pk, org_id=org_id, cost=cost, service=service, units=units, ledger_fields=ledger_fields
    )


def credits_consume_at_once(
    *,
    user: User,
    service: str,
    units: int,
    credits: Decimal | None = None,
    org_id: int | None = None,
    description: str = "",
    claim: Claim | None = None,
) -> CreditsResult | None:
    """``credits_consume`` of the personal balance as one statement that commits by itself, with
    ``claim`` (the Idempotency-Key's record) inside it; for callers outside any transaction.

    None, having written nothing, when the debit must take ``credits_consume``'s
    transaction: an org's allocation, the SQLite quick start, a balance that
    falls short, or a debit that emits a low-balance alert. Refuses bad input
    as ``credits_consume`` does. Raises IntegrityError, having written nothing,
    when the key is already taken.
    """
    if org_id is not None or connection.vendor != "postgresql" or connection.in_atomic_block:
        return None
    cost, ledger_fields = _priced_usage(
        service=service,
        units=units,
        credits=credits,
        description=description,
        idempotency_key=claim.key if claim else None,
    )
    debited = debit_personal_balance_at_once(
        user_id=user.pk, cost=cost, service=service, units=units, claim=claim, **ledger_fields
    )
    if debited is None:
        return None
    ledger_row, after = debited
    return CreditsResult(transaction=ledger_row, balance=after)


def _priced_usage(
    *, service: str, units: int, credits: Decimal | None, description: str, idempotency_key: str | None
) -> tuple[Decimal, dict]:
    """The cost of metered usage, and its ledger row's description, metadata and key."""
    rule = selectors.pricing_rule(service=service)
    if rule is None:
        raise UnknownService(details={"service": service})
    cost = to_credits(credits if credits is not None else rule["credits_per_unit"] * units)
    if not ZERO_CREDITS < cost <= CREDIT_MAX_VALUE:
        raise InvalidCost(details={"credits": cost, "max": CREDIT_MAX_VALUE})
    return cost, {
        "description": description or f"Usage: {service}",
        "metadata": {"service": service, "units": units, "credits_per_unit": str(rule["credits_per_unit"])},
        "idempotency_key": idempotency_key,
    }


def _consume_personal(*, user_id: int, cost: Decimal, service: str, units: int, ledger_fields: dict) -> CreditsResult:
    """The personal debit, without a savepoint of its own: two round trips fewer inside a caller's
    transaction (the API's idempotency record, for one).

    A savepoint would only let a caller go on after a failure in here. A shortfall
    writes nothing and is raised after the block, so the caller's transaction stays
    usable; any other error leaves it marked for rollback, so half a debit can
    never commit.
    """
    with transaction.atomic(savepoint=False):
        debited = debit_personal_balance(user_id=user_id, cost=cost, service=service, units=units, **ledger_fields)
        if debited is not None:
            ledger_row, after, threshold = debited
            alerts.balance_moved(
                user_id=user_id,
                before=after + cost,
                after=after,
                threshold=threshold,
                transaction_id=ledger_row.id,
                amount=-cost,
            )
    if debited is None:
        raise _shortfall(cost, selectors.personal_balance_amount(user_id=user_id))
    return CreditsResult(transaction=ledger_row, balance=after)


@transaction.atomic
def _consume_from_allocation(
    *, user_id: int, org_id: int, cost: Decimal, service: str, units: int, ledger_fields: dict
) -> CreditsResult:
    before, after, pool = _draw_from_allocation(user_id=user_id, org_id=org_id, cost=cost)
    ledger_row = write_ledger(
        user_id=user_id,
        org_id=org_id,
        transaction_type=CreditTransaction.Type.USAGE,
        amount=-cost,
        credits_before=before,
        credits_after=after,
        **ledger_fields,
    )
    rollups.usage_recorded(
        user_id=user_id, org_id=org_id, day=ledger_row.created_at.date(), service=service, credits=cost, units=units
    )
    pool_after, low_pool_threshold, low_allocation_threshold = pool
    alerts.org_usage_moved(
        user_id=user_id,
        org_id=org_id,
        cost=cost,
        allocation_after=after,
        pool_after=pool_after,
        low_allocation_threshold=low_allocation_threshold,
        low_pool_threshold=low_pool_threshold,
        transaction_id=ledger_row.id,
    )
    return CreditsResult(transaction=ledger_row, balance=after)


def _draw_from_allocation(*, user_id: int, org_id: int, cost: Decimal) -> tuple[Decimal, Decimal, tuple]:
    """Draw ``cost`` from the member's allocation, then its pool: (before, after, pool) where pool is
    (the pool's unused credits after, low_pool_threshold, low_allocation_threshold) for billing.alerts."""
    if membership_role(user_id=user_id, org_id=org_id) is None:
        raise OrgNotFound(details={"org_id": org_id})
    allocation_table, pool_table = CreditAllocation._meta.db_table, CreditPool._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {allocation_table} SET used_credits = {credits_sql(f'used_credits + {CREDITS_PARAM}')}, "  # noqa: S608
            f"updated_at = %s WHERE user_id = %s AND pool_id = (SELECT id FROM {pool_table} WHERE org_id = %s) "
            f"AND {credits_sql(f'allocated_credits - used_credits - {CREDITS_PARAM}')} >= 0 "
            "RETURNING pool_id, allocated_credits - used_credits",
            [cost, timezone.now(), user_id, org_id, cost],
        )
        row = cursor.fetchone()
        if row is None:
            remaining = selectors.allocation_remaining(user_id=user_id, org_id=org_id)
            raise _shortfall(cost, remaining, org_id=org_id)
        pool_id, remaining_after = row
        cursor.execute(
            f"UPDATE {pool_table} SET used_credits = {credits_sql(f'used_credits + {CREDITS_PARAM}')}, "  # noqa: S608
            "updated_at = %s WHERE id = %s "
            "RETURNING total_credits - used_credits, low_pool_threshold, low_allocation_threshold",
            [cost, timezone.now(), pool_id],
        )
        pool_after, low_pool_threshold, low_allocation_threshold = cursor.fetchone()
    after = credits_from_db(remaining_after)
    return after + cost, after, (credits_from_db(pool_after), low_pool_threshold, low_allocation_threshold)


def _shortfall(cost: Decimal, available: Decimal, org_id: int | None = None) -> InsufficientCredits:
    details: dict[str, Decimal | int] = {"required": cost, "available": available, "shortfall": cost - available}
    if org_id is not None:
        details["org_id"] = org_id
    return InsufficientCredits(details=details)


@transaction.atomic
def credits_adjust(*, actor: User, user: User, amount: Decimal, reason: str) -> CreditsResult:
    """Staff grant (positive) or correction (negative), recorded with who and why.

    A negative adjustment can take the balance to zero but never below it.
    """
    amount = to_credits(amount)
    if amount == ZERO_CREDITS:
        raise InvalidAdjustment("An adjustment must change the balance.", code="adjustment_is_zero")
    if not reason.strip():
        raise InvalidAdjustment("An adjustment needs a reason.", code="adjustment_reason_missing")
    moved = _apply_to_account(user_id=user.pk, delta=amount)
    if moved is None:
        raise _shortfall(-amount, selectors.personal_balance_amount(user_id=user.pk))
    before, after, threshold = moved
    ledger_row = write_ledger(
        user_id=user.pk,
        transaction_type=CreditTransaction.Type.ADJUSTMENT,
        amount=amount,
        credits_before=before,
        credits_after=after,
        description=f"{'Grant' if amount > 0 else 'Adjustment'}: {reason.strip()}"[:255],
        metadata={"actor_id": actor.pk, "actor": actor.get_username(), "reason": reason.strip()},
    )
    rollups.credits_flowed(day=ledger_row.created_at.date(), shard_key=user.pk, granted=amount)
    if amount > 0:
        alerts.credits_added(
            kind=EventType.CREDITS_GRANTED,
            user_id=user.pk,
            amount=amount,
            after=after,
            transaction_id=ledger_row.id,
            reason=reason.strip(),
        )
    else:
        alerts.balance_moved(
            user_id=user.pk,
            before=before,
            after=after,
            threshold=threshold,
            transaction_id=ledger_row.id,
            amount=amount,
        )
    return CreditsResult(transaction=ledger_row, balance=after)
