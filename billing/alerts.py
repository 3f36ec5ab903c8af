"""Low-credit alerts and the other billing webhooks, emitted in the transaction of the change.

A crossing is judged from the before/after values that the change's own
conditional UPDATE returned. Writers of one balance serialize on its row, so
each debit's before/after pair is exact and consecutive: of any number of
concurrent debits, exactly one takes a balance from above a threshold to at or
below it, and that one emits the alert, once. A debit that does not cross
emits nothing and costs nothing: the threshold comes back in the same
RETURNING row as the new balance.

Thresholds: ``CreditAccount.low_balance_threshold`` (``PUT /credits/alerts``),
``CreditPool.low_pool_threshold`` and ``low_allocation_threshold``
(``PUT /org-billing/organizations/{id}/credit-pool/alerts``). NULL is off.
``*.depleted`` fires when a balance reaches 0, with or without a threshold.
"""

from decimal import Decimal
from typing import Any

from django.db import transaction

from billing.errors import PoolNotFound
from billing.models import CreditAccount, CreditPool
from billing.money import ZERO_CREDITS, to_credits
from webhooks.models import EventType
from webhooks.outbox import event_emit


def crossed(*, before: Decimal, after: Decimal, threshold: Decimal | None) -> bool:
    """A downward crossing: from above the threshold to at or below it."""
    return threshold is not None and before > threshold >= after


def depleted(*, before: Decimal, after: Decimal) -> bool:
    return before > ZERO_CREDITS and after <= ZERO_CREDITS


# A threshold as raw SQL returns it: a Decimal, a string on SQLite, or None when it is off.
StoredThreshold = Decimal | str | None


def threshold_or_none(value: StoredThreshold) -> Decimal | None:
    """A threshold as stored (a Decimal, or a string from raw SQL on SQLite), or None when it is off."""
    return None if value is None else to_credits(str(value))


def _balance_fell(
    *,
    low: str,
    gone: str,
    amount: Decimal,
    before: Decimal,
    after: Decimal,
    threshold: Decimal | None,
    extra: dict[str, Any],
    user_id: int | None = None,
    org_id: int | None = None,
) -> None:
    """Emit ``low`` on a crossing of the threshold and ``gone`` on reaching 0, each only on its crossing."""
    data = {"amount": amount, "balance_before": before, "balance_after": after, "threshold": threshold, **extra}
    if crossed(before=before, after=after, threshold=threshold):
        event_emit(type=low, data=data, user_id=user_id, org_id=org_id)
    if depleted(before=before, after=after):
        event_emit(type=gone, data=data, user_id=user_id, org_id=org_id)


def balance_moved(
    *, user_id: int, before: Decimal, after: Decimal, threshold: StoredThreshold, transaction_id: int, amount: Decimal
) -> None:
    """After a personal debit: credits.balance_low and credits.depleted, each only on its crossing."""
    if after >= before:
        return
    _balance_fell(
        low=EventType.CREDITS_BALANCE_LOW,
        gone=EventType.CREDITS_DEPLETED,
        before=before,
        after=after,
        threshold=threshold_or_none(threshold),
        amount=amount,
        extra={"transaction_id": transaction_id},
        user_id=user_id,
    )


def org_usage_moved(
    *,
    user_id: int,
    org_id: int,
    cost: Decimal,
    allocation_after: Decimal,
    pool_after: Decimal,
    low_allocation_threshold: StoredThreshold,
    low_pool_threshold: StoredThreshold,
    transaction_id: int,
) -> None:
    """After org usage: allocation.low/.depleted (the member's allocation), credit_pool.low/.depleted
    (the pool's unused credits, total - used)."""
    _balance_fell(
        low=EventType.ALLOCATION_LOW,
        gone=EventType.ALLOCATION_DEPLETED,
        before=allocation_after + cost,
        after=allocation_after,
        threshold=threshold_or_none(low_allocation_threshold),
        amount=-cost,
        extra={"transaction_id": transaction_id},
        user_id=user_id,
        org_id=org_id,
    )
    _balance_fell(
        low=EventType.CREDIT_POOL_LOW,
        gone=EventType.CREDIT_POOL_DEPLETED,
        before=pool_after + cost,
        after=pool_after,
        threshold=threshold_or_none(low_pool_threshold),
        amount=-cost,
        extra={"member_user_id": user_id, "transaction_id": transaction_id},
        org_id=org_id,
    )


def credits_added(
    *, kind: str, user_id: int, amount: Decimal, after: Decimal, transaction_id: int, **extra: Any
) -> None:
    """credits.purchased or credits.granted."""
    data = {"amount": amount, "balance_after": after, "transaction_id": transaction_id, **extra}
    event_emit(type=kind, user_id=user_id, data=data)


def emit(type: str, *, org_id: int | None = None, user_id: int | None = None, **data: Any) -> None:
    """Any other billing event (subscriptions, pool refreshes)."""
    event_emit(type=type, user_id=user_id, org_id=org_id, data=data)


# -- Thresholds ---------------------------------------------------------------


def account_alerts(user_id: int) -> dict[str, Decimal | None]:
    threshold = CreditAccount.objects.filter(user_id=user_id).values_list("low_balance_threshold", flat=True).first()
    return {"low_balance_threshold": threshold_or_none(threshold)}


@transaction.atomic
def account_alerts_set(*, user_id: int, low_balance_threshold: Decimal | None) -> dict[str, Decimal | None]:
    """Set (or, with None, turn off) the personal low-balance threshold; creates the account if need be."""
    threshold = threshold_or_none(low_balance_threshold)
    CreditAccount.objects.bulk_create([CreditAccount(user_id=user_id)], ignore_conflicts=True)
    CreditAccount.objects.filter(user_id=user_id).update(low_balance_threshold=threshold)
    return {"low_balance_threshold": threshold}


def pool_alerts(org_id: int) -> dict[str, Decimal | None]:
    row = CreditPool.objects.filter(org_id=org_id).values("low_pool_threshold", "low_allocation_threshold").first()
    if row is None:
        raise PoolNotFound(details={"org_id": org_id})
    return {
        "low_pool_threshold": threshold_or_none(row["low_pool_threshold"]),
        "low_allocation_threshold": threshold_or_none(row["low_allocation_threshold"]),
    }


@transaction.atomic
def pool_alerts_set(
    *, org_id: int, low_pool_threshold: Decimal | None, low_allocation_threshold: Decimal | None
) -> dict[str, Decimal | None]:
    """Set the org's pool and allocation thresholds (None turns one off)."""
    values = {
        "low_pool_threshold": threshold_or_none(low_pool_threshold),
        "low_allocation_threshold": threshold_or_none(low_allocation_threshold),
    }
    if not CreditPool.objects.filter(org_id=org_id).update(**values):
        raise PoolNotFound(details={"org_id": org_id})
    return values
