"""Billing cycles: subscription renewals and credit-pool refreshes, run from cron.

Both jobs are safe to run every minute and twice at once:
* a batch locks its rows with ``SELECT ... FOR UPDATE SKIP LOCKED``, so a second
  run passes over what the first is working on and, once that commits, no
  longer finds those rows due;
* the writes guard themselves too: an invoice is unique per (subscription,
  period_start), and a pool refresh is keyed ``pool-refresh:<org>:<period
  start>`` in the ledger, so renewal and the refresh job never credit one
  period twice.
"""

import calendar
import enum
import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Exists, OuterRef, Prefetch, QuerySet, Value, When
from django.utils import timezone

from billing import alerts, rollups
from billing.errors import PaymentDeclined
from billing.ledger import write_ledger
from billing.models import LIVE_SUBSCRIPTION_STATUSES, CreditPool, CreditTransaction, Invoice, Plan, Subscription
from billing.money import CREDITS_PARAM, credits_from_db, credits_sql, to_credits
from billing.payments import get_gateway
from ops_center import cache
from orgs.models import Membership
from webhooks.models import EventType

logger = logging.getLogger(__name__)


class NoBillingContact(Exception):
    """The org has no owner or admin to book its pool refresh under."""


class Outcome(enum.StrEnum):
    RENEWED = "renewed"
    TRIAL_CONVERTED = "trial_converted"
    CANCELED = "canceled"
    PAST_DUE = "past_due"
    REFRESHED = "refreshed"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class CycleResult:
    """What one job did to one subscription or pool; ``note`` says why something was skipped or failed."""

    subject_id: int
    outcome: Outcome
    pool_refreshed: bool = False
    note: str = ""


# -- Periods ------------------------------------------------------------------


def _months_in(interval: str) -> int:
    return 12 if interval == Plan.Interval.YEAR else 1


def _add_months(moment: datetime, months: int, day: int) -> datetime:
    """``day`` of the month ``months`` later, clamped to that month's end."""
    year, month_index = divmod(moment.month - 1 + months, 12)
    year, month = moment.year + year, month_index + 1
    return moment.replace(year=year, month=month, day=min(day, calendar.monthrange(year, month)[1]))


def _billing_day(start: datetime, end: datetime, interval: str) -> int:
    # A period cut short by a short month (Jan 31 -> Feb 28) keeps its day, so
    # the next one ends on Mar 31 instead of drifting to the 28th for good.
    return start.day if _add_months(start, _months_in(interval), start.day) == end else end.day


def next_period(start: datetime, end: datetime, interval: str) -> tuple[datetime, datetime]:
    """The period after [start, end): one interval on from ``end``, on the same billing day."""
    return end, _add_months(end, _months_in(interval), _billing_day(start, end, interval))


def pool_period(*, start: datetime, subscription: Subscription) -> tuple[datetime, datetime]:
    """The refresh period of a pool due at ``start``: one interval on the subscription's
    billing day, never past its paid-up period, so it meets renewal's periods edge to edge."""
    interval = subscription.plan.interval
    day = _billing_day(subscription.current_period_start, subscription.current_period_end, interval)
    return start, min(_add_months(start, _months_in(interval), day), subscription.current_period_end)


# -- What is due --------------------------------------------------------------


def due_subscriptions(*, as_of: datetime) -> QuerySet[Subscription]:
    """Active subscriptions whose period has ended, oldest first: a range scan of idx_subscriptions_billing."""
    return Subscription.objects.filter(status=Subscription.Status.ACTIVE, current_period_end__lte=as_of).order_by(
        "current_period_end"
    )


def ended_trials(*, as_of: datetime) -> QuerySet[Subscription]:
    """Trials whose period has ended. Few at any time, so no index of their own."""
    return Subscription.objects.filter(status=Subscription.Status.TRIALING, current_period_end__lte=as_of).order_by(
        "current_period_end"
    )


def due_pools(*, as_of: datetime) -> QuerySet[CreditPool]:
    """Pools due for a refresh, oldest first: a range scan of idx_credit_pools_refresh.

    Only periods that a live subscription has already reached count. The pool
    never runs ahead of billing: a period's credits come after its renewal is
    paid, and a pool whose renewal already refreshed it is not due again.
    """
    covering = Subscription.objects.filter(
        org_id=OuterRef("org_id"),
        status__in=LIVE_SUBSCRIPTION_STATUSES,
        current_period_end__gt=OuterRef("next_refresh_date"),
    )
    return (
        CreditPool.objects.filter(next_refresh_date__lte=as_of).filter(Exists(covering)).order_by("next_refresh_date")
    )


def lock_batch(due: QuerySet, *, limit: int, exclude_ids: Collection[int] = ()) -> QuerySet:
    """Up to ``limit`` due rows that no other run holds, locked until the batch commits."""
    return due.exclude(pk__in=exclude_ids).select_for_update(skip_locked=True, of=("self",))[:limit]


# -- Subscriptions ------------------------------------------------------------


@transaction.atomic
def subscriptions_close_periods(
    *, due: QuerySet[Subscription], limit: int, exclude_ids: Collection[int] = ()
) -> list[CycleResult]:
    """One batch of ``due`` subscriptions (due_subscriptions or ended_trials), in one transaction."""
    batch = lock_batch(due.select_related("plan", "org"), limit=limit, exclude_ids=exclude_ids)
    return [_guarded(subscription_close_period, subscription.pk, subscription=subscription) for subscription in batch]


@transaction.atomic
def subscription_close_period(*, subscription: Subscription) -> CycleResult:
    """Cancel a subscription whose period ended, or renew it and refresh the org's pool."""
    if subscription.cancel_at_period_end:
        subscription_cancel(subscription=subscription)
        return CycleResult(subscription.pk, Outcome.CANCELED)
    was_trial = subscription.status == Subscription.Status.TRIALING
    invoice = subscription_renew(subscription=subscription)
    if invoice.status != Invoice.Status.PAID:
        return CycleResult(subscription.pk, Outcome.PAST_DUE)
    outcome = Outcome.TRIAL_CONVERTED if was_trial else Outcome.RENEWED
    try:
        refreshed = pool_refresh(
            org=subscription.org,
            plan_code=subscription.plan.code,
            period_start=subscription.current_period_start,
            period_end=subscription.current_period_end,
            credits=subscription.plan.included_credits,
        )
    except NoBillingContact as exc:
        # The renewal is paid and stays; refresh_credit_pools catches the pool up once the org has an owner.
        return CycleResult(subscription.pk, outcome, note=str(exc))
    return CycleResult(subscription.pk, outcome, pool_refreshed=refreshed is not None)


@transaction.atomic
def subscription_cancel(*, subscription: Subscription) -> None:
    """End the subscription at its period end: the period stays, and the pool stops refreshing."""
    subscription.status = Subscription.Status.CANCELED
    subscription.save(update_fields=["status", "updated_at"])
    CreditPool.objects.filter(org_id=subscription.org_id).update(next_refresh_date=None, updated_at=timezone.now())
    cache.invalidate_on_commit(org_ids=[subscription.org_id])
    alerts.emit(EventType.SUBSCRIPTION_CANCELED, org_id=subscription.org_id, **_subscription_data(subscription))


def _subscription_data(subscription: Subscription, invoice: Invoice | None = None) -> dict:
    data = {
        "subscription_id": subscription.pk,
        "plan": subscription.plan.code,
        "status": subscription.status,
        "current_period_start": subscription.current_period_start,
        "current_period_end": subscription.current_period_end,
    }
    if invoice is not None:
        data.update(
            invoice_id=invoice.pk,
            invoice_status=invoice.status,
            amount_minor=invoice.amount_minor,
            currency=invoice.currency,
        )
    return data


@transaction.atomic
def subscription_renew(*, subscription: Subscription) -> Invoice:
    """Start the next period, invoice it and charge it; a trial becomes active.

    A declined charge leaves the invoice open and the subscription past_due.
    Callers hold the row lock; the invoice's uniqueness per (subscription,
    period_start) still stops a second renewal of one period before any charge.
    """
    plan = subscription.plan
    period_start, period_end = next_period(
        subscription.current_period_start, subscription.current_period_end, plan.interval
    )
    invoice = Invoice.objects.create(
        source=Invoice.Source.SUBSCRIPTION,
        org_id=subscription.org_id,
        subscription=subscription,
        amount_minor=plan.price_minor,
        currency=plan.currency,
        period_start=period_start,
        period_end=period_end,
        status=Invoice.Status.OPEN,
    )
    subscription.current_period_start, subscription.current_period_end = period_start, period_end
    subscription.status = Subscription.Status.ACTIVE
    try:
        # Nothing to collect on a free plan; gateways refuse zero charges.
        if plan.price_minor:
            get_gateway().charge(
                amount_minor=plan.price_minor,
                currency=plan.currency,
                description=f"{plan.name}, {period_start:%Y-%m-%d} to {period_end:%Y-%m-%d}",
                # Survives a rolled-back batch: a retry charges the same period under the same key.
                idempotency_key=f"subscription-{subscription.pk}:{period_start.isoformat()}",
            )
    except PaymentDeclined:
        subscription.status = Subscription.Status.PAST_DUE
    else:
        invoice.status, invoice.paid_at = Invoice.Status.PAID, timezone.now()
        invoice.save(update_fields=["status", "paid_at"])
        rollups.revenue_recorded(
            day=invoice.paid_at.date(),
            currency=plan.currency,
            source=Invoice.Source.SUBSCRIPTION,
            amount_minor=plan.price_minor,
            shard_key=subscription.org_id,
        )
    subscription.save(update_fields=["status", "current_period_start", "current_period_end", "updated_at"])
    cache.invalidate_on_commit(org_ids=[subscription.org_id])
    renewed = subscription.status == Subscription.Status.ACTIVE
    alerts.emit(
        EventType.SUBSCRIPTION_RENEWED if renewed else EventType.SUBSCRIPTION_PAST_DUE,
        org_id=subscription.org_id,
        **_subscription_data(subscription, invoice),
    )
    return invoice


# -- Pools --------------------------------------------------------------------


# The org's attribute that with_live_subscription's prefetch fills with a list.
LIVE_SUBSCRIPTIONS_ATTR = "live_subscriptions"


def with_live_subscription(pools: QuerySet[CreditPool]) -> QuerySet[CreditPool]:
    """Pools with their org and its live subscription (``live_subscription(pool)``), in two queries."""
    live = Subscription.objects.filter(status__in=LIVE_SUBSCRIPTION_STATUSES).select_related("plan")
    return pools.select_related("org").prefetch_related(
        Prefetch("org__subscriptions", queryset=live, to_attr=LIVE_SUBSCRIPTIONS_ATTR)
    )


def live_subscription(pool: CreditPool) -> Subscription | None:
    subscriptions: list[Subscription] = getattr(pool.org, LIVE_SUBSCRIPTIONS_ATTR)
    return next(iter(subscriptions), None)


@transaction.atomic
def pools_refresh_due(*, as_of: datetime, limit: int, exclude_ids: Collection[int] = ()) -> list[CycleResult]:
    """One batch of due pools, in one transaction: each gets the next period of its org's plan."""
    batch = lock_batch(with_live_subscription(due_pools(as_of=as_of)), limit=limit, exclude_ids=exclude_ids)
    return [_guarded(_refresh_due_pool, pool.pk, pool=pool) for pool in batch]


def _refresh_due_pool(*, pool: CreditPool) -> CycleResult:
    start, subscription = pool.next_refresh_date, live_subscription(pool)
    if start is None:  # due_pools selects pools with a refresh date only
        raise ValueError(f"pool {pool.pk} has no next refresh date")
    # Billing may have moved the subscription on (past_due, canceled) since the due query ran.
    if subscription is None or subscription.current_period_end <= start:
        return CycleResult(pool.pk, Outcome.SKIPPED, note=f"no live subscription covers {start:%Y-%m-%d}")
    period_start, period_end = pool_period(start=start, subscription=subscription)
    try:
        refreshed = pool_refresh(
            org=pool.org,
            plan_code=subscription.plan.code,
            period_start=period_start,
            period_end=period_end,
            credits=subscription.plan.included_credits,
        )
    except NoBillingContact as exc:
        return CycleResult(pool.pk, Outcome.SKIPPED, note=str(exc))
    if refreshed is None:
        return CycleResult(pool.pk, Outcome.SKIPPED, note=f"period from {start:%Y-%m-%d} already refreshed")
    return CycleResult(pool.pk, Outcome.REFRESHED, pool_refreshed=True)


@transaction.atomic
def pool_refresh(
    *, org, plan_code: str, period_start: datetime, period_end: datetime, credits: Decimal
) -> CreditTransaction | None:
    """Add a period's included credits to the org's pool, once per period.

    Returns the ledger row, or None when the period was already refreshed.
    Raises NoBillingContact when the org has no owner or admin: every refresh
    is in the ledger, and a ledger row needs a user.
    """
    credits = to_credits(credits)
    contact_id = _billing_contact_id(org.pk)
    key = f"pool-refresh:{org.pk}:{period_start.astimezone(UTC).isoformat()}"
    if _already_refreshed(org.pk, key):
        return None
    try:
        with transaction.atomic():
            total_after, unused_after = _add_to_pool(org_id=org.pk, credits=credits, next_refresh_date=period_end)
            row = write_ledger(
                user_id=contact_id,
                org_id=org.pk,
                transaction_type=CreditTransaction.Type.REFRESH,
                amount=credits,
                credits_before=total_after - credits,
                credits_after=total_after,
                description=f"Pool refresh for {period_start:%Y-%m-%d} to {period_end:%Y-%m-%d}",
                metadata={
                    "period_start": period_start.isoformat(),
                    "period_end": period_end.isoformat(),
                    "plan": plan_code,
                },
                idempotency_key=key,
            )
            rollups.credits_flowed(day=row.created_at.date(), shard_key=contact_id, refreshed=credits)
            alerts.emit(
                EventType.CREDIT_POOL_REFRESHED,
                org_id=org.pk,
                amount=credits,
                total_credits=total_after,
                balance_after=unused_after,
                period_start=period_start,
                period_end=period_end,
                plan=plan_code,
                transaction_id=row.id,
            )
    except IntegrityError:
        # A concurrent run refreshed this period between the check and the
        # insert; the savepoint took this run's pool update back with it.
        if not _already_refreshed(org.pk, key):
            raise
        return None
    cache.invalidate_on_commit(org_ids=[org.pk])
    return row


def _already_refreshed(org_id: int, key: str) -> bool:
    # By org, not by contact: an ownership change between two runs must not refresh a period twice.
    return CreditTransaction.objects.filter(
        org_id=org_id, transaction_type=CreditTransaction.Type.REFRESH, idempotency_key=key
    ).exists()


def _billing_contact_id(org_id: int) -> int:
    """The org's owner, else its earliest admin: the user its pool refreshes are booked under."""
    owner_first = Case(When(role=Membership.Role.OWNER, then=Value(0)), default=Value(1))
    contact_id = (
        Membership.objects.filter(org_id=org_id, role__in=[Membership.Role.OWNER, Membership.Role.ADMIN])
        .order_by(owner_first, "created_at", "id")
        .values_list("user_id", flat=True)
        .first()
    )
    if contact_id is None:
        raise NoBillingContact(f"org {org_id} has no owner or admin to book its pool refresh under")
    return contact_id


def _add_to_pool(*, org_id: int, credits: Decimal, next_refresh_date: datetime) -> tuple[Decimal, Decimal]:
    """Add to the pool total in one statement and return the new total and unused credits (total - used);
    an org's first refresh creates its pool."""
    table = CreditPool._meta.db_table
    sql = (
        f"UPDATE {table} SET total_credits = {credits_sql(f'total_credits + {CREDITS_PARAM}')}, "  # noqa: S608
        "next_refresh_date = %s, "
        "updated_at = %s WHERE org_id = %s RETURNING total_credits, total_credits - used_credits"
    )
    params = (credits, next_refresh_date, timezone.now(), org_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            CreditPool.objects.bulk_create([CreditPool(org_id=org_id)], ignore_conflicts=True)
            cursor.execute(sql, params)
            row = cursor.fetchone()
    return credits_from_db(row[0]), credits_from_db(row[1])


def _guarded(service, subject_id: int, **kwargs) -> CycleResult:
    """Run one item's service in its own savepoint, so one broken row cannot hold back its batch."""
    try:
        with transaction.atomic():
            return service(**kwargs)
    except Exception as exc:  # reported by the command, logged with its traceback here
        logger.exception("billing cycle failed for %s %s", service.__name__, subject_id)
        return CycleResult(subject_id, Outcome.FAILED, note=f"{type(exc).__name__}: {exc}")
