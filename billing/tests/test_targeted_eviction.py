"""A write evicts only the cached views it can have changed, and every view stays equal to its recomputation.

Each view names the kinds of write that change it (``register_view(changed_by=...)``):
a purchase leaves the usage summary cached, a ledger row leaves the org's
subscription cached, and the staff's edits of what no ledger row records (a
subscription, its plan, a pool's refresh date) evict every view of the org.
"""

import datetime
from decimal import Decimal

import pytest
from django.core.cache import cache as django_cache

from billing.allocations import pool_allocate
from billing.models import CreditPool
from billing.services import credits_adjust, credits_consume, credits_purchase
from billing.tests.factories import CreditAllocationFactory, CreditPoolFactory, PlanFactory, SubscriptionFactory
from ops_center import cache
from ops_center.tests.api_support import redis_calls
from orgs.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_catalog")]


@pytest.fixture
def member():
    org = OrganizationFactory()
    SubscriptionFactory(org=org, plan=PlanFactory(code="team", name="Team"))
    pool = CreditPoolFactory(org=org, total_credits=Decimal("1000"), allocated_credits=Decimal("100"))
    user = MembershipFactory(org=org, role="member").user
    CreditAllocationFactory(pool=pool, user=user, allocated_credits=Decimal("100"))
    credits_purchase(user=user, credits=Decimal("50"))
    return user, org


def subjects(user, org) -> list[tuple[str, int]]:
    return [("user", user.pk), ("org", org.pk)]


def warm_everything(user, org) -> dict[str, tuple]:
    """Cache every view of both, as read (no refill marker): (entry, by view name)."""
    for subject, subject_id in subjects(user, org):
        cache.warm(subject, subject_id)
    return entries(user, org)


def entries(user, org) -> dict[str, tuple | None]:
    return {
        view.key.__name__: django_cache.get(view.cache_key(subject_id))
        for subject, subject_id in subjects(user, org)
        for view in cache.registered_views(subject)
    }


def refilled(user, org) -> set[str]:
    """The views a writer evicted and put back (they carry the refill marker)."""
    return {
        view.key.__name__
        for subject, subject_id in subjects(user, org)
        for view in cache.registered_views(subject)
        if django_cache.get(cache.refilled_marker(view.cache_key(subject_id))) is not None
    }


def assert_every_cached_view_is_fresh(user, org) -> None:
    for subject, subject_id in subjects(user, org):
        for view in cache.registered_views(subject):
            entry = django_cache.get(view.cache_key(subject_id))
            assert entry is not None, view.key.__name__
            assert entry[1] == view.refiller(subject_id)(), view.key.__name__


def edit_subscription(user, org):
    subscription = org.subscriptions.get()
    subscription.cancel_at_period_end = True
    subscription.save()


def rename_plan(user, org):
    plan = org.subscriptions.get().plan
    plan.name = "Team (2027)"
    plan.save()


def move_refresh_date(user, org):
    pool = CreditPool.objects.get(org=org)
    pool.next_refresh_date = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
    pool.save()


USER_LEDGER_VIEWS = {"balance_key", "history_pages_key"}
ORG_LEDGER_VIEWS = {"credit_pool_key", "members_usage_key"}
ALL_ORG_VIEWS = {"subscription_key", *ORG_LEDGER_VIEWS}

# write -> the views it evicts (and, as they were read, refills); every other view keeps its entry
WRITES = {
    "purchase": (lambda user, org: credits_purchase(user=user, credits=Decimal("5")), USER_LEDGER_VIEWS),
    "grant": (
        lambda user, org: credits_adjust(actor=UserFactory(is_staff=True), user=user, amount=Decimal("3"), reason="r"),
        USER_LEDGER_VIEWS,
    ),
    "personal usage": (
        lambda user, org: credits_consume(user=user, service="embedding", units=1, credits=Decimal("2")),
        {*USER_LEDGER_VIEWS, "usage_summary_key"},
    ),
    "org usage": (
        lambda user, org: credits_consume(user=user, service="embedding", units=1, credits=Decimal("2"), org_id=org.pk),
        {*USER_LEDGER_VIEWS, "usage_summary_key", *ORG_LEDGER_VIEWS},
    ),
    "allocation": (
        lambda user, org: pool_allocate(
            actor=UserFactory(is_staff=True), org_id=org.pk, user_id=user.pk, credits=Decimal("150")
        ),
        {*USER_LEDGER_VIEWS, *ORG_LEDGER_VIEWS},
    ),
    "allocation note only": (
        lambda user, org: pool_allocate(
            actor=UserFactory(is_staff=True), org_id=org.pk, user_id=user.pk, credits=Decimal("100"), note="Q1"
        ),
        {"balance_key"},
    ),
    "subscription edited": (edit_subscription, ALL_ORG_VIEWS),
    "plan renamed": (rename_plan, ALL_ORG_VIEWS),
    "pool refresh date moved": (move_refresh_date, ALL_ORG_VIEWS),
}


@pytest.mark.parametrize("write", WRITES)
def test_a_write_evicts_exactly_the_views_it_changes_and_every_view_stays_fresh(member, write):
    user, org = member
    before = warm_everything(user, org)
    do, changed = WRITES[write]

    do(user, org)

    assert refilled(user, org) == changed
    after = entries(user, org)
    assert {name for name in before if after[name] == before[name]} == set(before) - changed
    assert_every_cached_view_is_fresh(user, org)


def test_a_purchase_keeps_the_usage_summary_a_hit(user_api, user):
    user_api.get("/api/v1/credits/usage/summary")
    credits_purchase(user=user, credits=Decimal("5"))

    credits_purchase(user=user, credits=Decimal("5"))

    assert user_api.get("/api/v1/credits/usage/summary")["X-Cache"] == "HIT"


def test_a_write_evicts_its_views_in_one_command(user):
    """A metering client that never reads: its debit deletes three views and their markers in one script, and
    bumps no generation (``ops_center.cache_generations``): nothing was cached, and nothing is being computed."""
    credits_purchase(user=user, credits=Decimal("10"))
    debit = lambda: credits_consume(user=user, service="embedding", units=1, credits=Decimal("1"))  # noqa: E731
    debit()  # the pricing rule is cached, and Redis knows the script

    calls = redis_calls(debit)

    views = len(cache.user_keys(user.pk))
    assert calls == {"mget": 1, "evalsha": 1, "del": 2 * views, "exists": views}
