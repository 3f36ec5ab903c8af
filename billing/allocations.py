"""Members' allocations from an org's credit pool: one transaction per change, as in billing.services."""

from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from billing.errors import AllocationBelowUsage, NotAMember, PoolExhausted, PoolNotFound
from billing.ledger import write_ledger
from billing.models import CreditAllocation, CreditPool, CreditTransaction
from billing.money import CREDITS_PARAM, credits_sql, to_credits
from orgs.models import Membership, User


@dataclass(frozen=True)
class AllocationResult:
    allocation: CreditAllocation
    transaction: CreditTransaction | None


@transaction.atomic
def pool_allocate(*, actor: User, org_id: int, user_id: int, credits: Decimal, note: str = "") -> AllocationResult:
    """Set a member's allocation from the org's pool to ``credits`` (raise or lower it).

    Never below what the member has used, never beyond the pool's unallocated
    credits. The allocation row is locked before the pool row is updated, the
    same order usage takes, so the two cannot deadlock; the pool moves with one
    conditional UPDATE, so two admins can never over-allocate it together.
    """
    credits = to_credits(credits)
    if not Membership.objects.filter(org_id=org_id, user_id=user_id).exists():
        raise NotAMember(details={"user_id": user_id})
    pool_id = CreditPool.objects.filter(org_id=org_id).values_list("id", flat=True).first()
    if pool_id is None:
        raise PoolNotFound(details={"org_id": org_id})
    CreditAllocation.objects.bulk_create([CreditAllocation(pool_id=pool_id, user_id=user_id)], ignore_conflicts=True)
    allocation = CreditAllocation.objects.select_for_update().get(pool_id=pool_id, user_id=user_id)
    if credits < allocation.used_credits:
        raise AllocationBelowUsage(details={"used": allocation.used_credits, "requested": credits})
    delta = credits - allocation.allocated_credits
    if delta == 0 and note in ("", allocation.note):
        return AllocationResult(allocation=allocation, transaction=None)

    pool_table = CreditPool._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {pool_table} SET allocated_credits = {credits_sql(f'allocated_credits + {CREDITS_PARAM}')}, "  # noqa: S608
            f"updated_at = %s WHERE id = %s "
            f"AND {credits_sql(f'total_credits - allocated_credits - {CREDITS_PARAM}')} >= 0 "
            "RETURNING total_credits - allocated_credits",
            [delta, timezone.now(), pool_id, delta],
        )
        if cursor.fetchone() is None:
            available = CreditPool.objects.filter(pk=pool_id).values_list("available_credits", flat=True).get()
            raise PoolExhausted(details={"available": available, "increase": delta})

    remaining_before = allocation.allocated_credits - allocation.used_credits
    allocation.allocated_credits = credits
    allocation.note = note or allocation.note
    allocation.save(update_fields=["allocated_credits", "note", "updated_at"])
    ledger_row = None
    if delta != 0:
        ledger_row = write_ledger(
            user_id=user_id,
            org_id=org_id,
            transaction_type=CreditTransaction.Type.ALLOCATION,
            amount=delta,
            credits_before=remaining_before,
            credits_after=remaining_before + delta,
            description=(note or f"Allocation set to {credits.normalize():f}")[:255],
            metadata={"actor_id": actor.pk, "allocated": str(credits)},
        )
    return AllocationResult(allocation=allocation, transaction=ledger_row)
