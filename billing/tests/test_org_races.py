"""Org races with real threads on PostgreSQL, and read-your-writes on org views."""

from decimal import Decimal
from itertools import pairwise

import pytest
from django.db.models import Sum

from billing.allocations import pool_allocate
from billing.errors import AllocationBelowUsage, InsufficientCredits, PoolExhausted
from billing.models import CreditAllocation, CreditPool, CreditTransaction
from billing.services import credits_consume
from billing.tests.factories import CreditPoolFactory
from ops_center.tests.api_support import SchemaCheckedClient
from ops_center.tests.threads import run_in_threads
from orgs.tests.factories import MembershipFactory, OrganizationFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_catalog")]


@pytest.fixture
def org():
    org = OrganizationFactory()
    CreditPoolFactory(org=org, total_credits=Decimal("100"))
    return org


def test_two_admins_allocating_at_once_never_overallocate(org):
    admins = [MembershipFactory(org=org, role="admin").user for _ in range(2)]
    members = [MembershipFactory(org=org).user for _ in range(20)]

    def allocate(index):
        try:
            pool_allocate(actor=admins[index % 2], org_id=org.pk, user_id=members[index].pk, credits=Decimal("15"))
            return "ok"
        except PoolExhausted:
            return "exhausted"

    outcomes = run_in_threads(20, allocate)

    assert outcomes.count("ok") == 6  # 6 x 15 = 90 of 100
    pool = CreditPool.objects.get(org=org)
    assert pool.allocated_credits == Decimal("90")
    assert CreditAllocation.objects.filter(pool=pool).aggregate(total=Sum("allocated_credits"))["total"] == Decimal(
        "90"
    )


def test_allocation_racing_usage_never_leaves_used_above_allocated(org):
    owner = MembershipFactory(org=org, role="owner").user
    member = MembershipFactory(org=org).user
    pool_allocate(actor=owner, org_id=org.pk, user_id=member.pk, credits=Decimal("50"))

    def act(index):
        try:
            if index % 2:
                credits_consume(user=member, service="embedding", units=1, credits=Decimal("5"), org_id=org.pk)
                return "used"
            pool_allocate(actor=owner, org_id=org.pk, user_id=member.pk, credits=Decimal(20 + index))
            return "allocated"
        except (InsufficientCredits, AllocationBelowUsage) as exc:
            return type(exc).__name__

    run_in_threads(20, act)

    allocation = CreditAllocation.objects.get(user=member)
    pool = CreditPool.objects.get(org=org)
    assert allocation.used_credits <= allocation.allocated_credits
    assert pool.used_credits == allocation.used_credits
    assert pool.allocated_credits == allocation.allocated_credits
    rows = list(CreditTransaction.objects.filter(user=member, org=org).order_by("created_at", "id"))
    for previous, row in pairwise(rows):
        assert row.credits_before == previous.credits_after
    assert rows[-1].credits_after == allocation.allocated_credits - allocation.used_credits


def test_allocation_is_read_back_at_once_by_member_and_admin(org):
    owner = MembershipFactory(org=org, role="owner").user
    member = MembershipFactory(org=org).user
    admin_api, member_api = SchemaCheckedClient().as_user(owner), SchemaCheckedClient().as_user(member)
    pool_path = f"/api/v1/org-billing/organizations/{org.pk}/credit-pool"
    for _ in range(2):
        admin_api.get(pool_path)
        member_api.get("/api/v1/credits/balance")
    assert admin_api.get(pool_path)["X-Cache"] == "HIT"

    response = admin_api.post(f"{pool_path}/allocations", {"user_id": member.pk, "credits": "30"}, format="json")
    assert response.status_code == 200

    assert admin_api.get(pool_path).json()["allocated"] == "30.0000"
    assert member_api.get("/api/v1/credits/balance").json()["total_available"] == "30.0000"

    credits_consume(user=member, service="embedding", units=1, credits=Decimal("4"), org_id=org.pk)

    assert admin_api.get(pool_path).json()["used"] == "4.0000"
    usage = admin_api.get(f"/api/v1/org-billing/organizations/{org.pk}/members/usage").json()
    assert {row["user_id"]: row["usage_in_window"] for row in usage["results"]}[member.pk] == "4.0000"
