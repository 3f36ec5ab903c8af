"""Amounts that binary floats get wrong: the same answers on SQLite (the quick start) as on PostgreSQL.

SQLite binds a Decimal parameter as text and keeps credit columns as floats;
these are the cases where that once turned a valid debit into a 402, an
allocation into 409 ``pool_exhausted``, or a sum into ``0.30000000000000004``.
`make test` runs this file on both databases.
"""

from decimal import Decimal

import pytest

from billing.models import CreditAccount
from billing.services import credits_adjust, credits_consume
from billing.tests.factories import CreditAllocationFactory, CreditPoolFactory
from orgs.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

USAGE = "/api/v1/credits/usage"


def use(api, credits: str, **extra):
    return api.post(USAGE, {"service": "embedding", "units": 1, "credits": credits, **extra}, format="json")


def test_a_balance_left_by_decimal_steps_pays_its_last_tenth_exactly(user_api, user):
    credits_adjust(actor=UserFactory(is_staff=True), user=user, amount=Decimal("1"), reason="trial")

    assert use(user_api, "0.9").json()["balance"] == "0.1000"
    last = use(user_api, "0.1")
    refused = use(user_api, "0.0001")

    assert last.status_code == 201
    assert last.json()["balance"] == "0.0000"
    assert refused.status_code == 402
    assert refused.json()["error"]["details"] == {"required": "0.0001", "available": "0.0000", "shortfall": "0.0001"}
    assert user_api.get("/api/v1/credits/balance").json()["balance"] == "0.0000"


def test_many_small_debits_sum_to_the_exact_balance(user_api, user):
    credits_adjust(actor=UserFactory(is_staff=True), user=user, amount=Decimal("1"), reason="trial")

    for _ in range(10):
        assert use(user_api, "0.0700").status_code == 201

    assert user_api.get("/api/v1/credits/balance").json()["balance"] == "0.3000"
    assert CreditAccount.objects.get(user=user).balance == Decimal("0.3000")
    summary = user_api.get("/api/v1/credits/usage/summary").json()
    assert summary["total_credits"] == "0.7000"
    assert summary["by_service"][0]["credits"] == "0.7000"


@pytest.fixture
def org_admin_api(api):
    pool = CreditPoolFactory(total_credits=Decimal("1"))
    admin = MembershipFactory(org=pool.org, role="admin").user
    api.as_user(admin)
    api.pool = pool
    return api


def test_allocations_of_fractions_fill_the_pool_exactly(org_admin_api):
    pool = org_admin_api.pool
    members = [MembershipFactory(org=pool.org).user for _ in range(3)]
    path = f"/api/v1/org-billing/organizations/{pool.org_id}/credit-pool"

    answers = [
        org_admin_api.post(f"{path}/allocations", {"user_id": member.pk, "credits": credits}, format="json")
        for member, credits in zip(members, ("0.1", "0.2", "0.7"), strict=True)
    ]
    one_too_many = org_admin_api.post(
        f"{path}/allocations", {"user_id": members[0].pk, "credits": "0.1001"}, format="json"
    )

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert one_too_many.status_code == 409
    assert one_too_many.json()["error"]["code"] == "pool_exhausted"
    assert one_too_many.json()["error"]["details"] == {"available": "0.0000", "increase": "0.0001"}
    pool_body = org_admin_api.get(path).json()
    assert (pool_body["allocated"], pool_body["available"]) == ("1.0000", "0.0000")


def test_org_usage_shortfall_is_positive_and_exact(user_api, user):
    allocation = CreditAllocationFactory(user=user, allocated_credits=Decimal("1"))
    MembershipFactory(user=user, org=allocation.pool.org)
    allocation.pool.allocated_credits = Decimal("1")
    allocation.pool.total_credits = Decimal("1")
    allocation.pool.save()
    org_id = allocation.pool.org_id

    assert use(user_api, "0.9", org_id=org_id).status_code == 201
    assert use(user_api, "0.1", org_id=org_id).status_code == 201
    refused = use(user_api, "0.25", org_id=org_id)

    assert refused.status_code == 402
    assert refused.json()["error"]["details"] == {
        "required": "0.2500",
        "available": "0.0000",
        "shortfall": "0.2500",
        "org_id": org_id,
    }


def test_member_usage_and_platform_figures_have_four_places(api, user):
    allocation = CreditAllocationFactory(user=user, allocated_credits=Decimal("1"))
    org = allocation.pool.org
    allocation.pool.allocated_credits = allocation.pool.total_credits = Decimal("1")
    allocation.pool.save()
    MembershipFactory(user=user, org=org)
    admin = MembershipFactory(org=org, role="admin").user
    for credits in ("0.1", "0.2"):
        credits_consume(user=user, service="embedding", units=1, credits=Decimal(credits), org_id=org.pk)

    api.as_user(admin)
    members = api.get(f"/api/v1/org-billing/organizations/{org.pk}/members/usage").json()["results"]
    api.as_user(UserFactory(is_staff=True))
    platform = api.get("/api/v1/org-billing/analytics/platform").json()

    row = next(member for member in members if member["user_id"] == user.pk)
    assert (row["used"], row["usage_in_window"], row["remaining"]) == ("0.3000", "0.3000", "0.7000")
    assert platform["credits"]["consumed"]["last_30_days"] == "0.3000"
    assert platform["top_orgs"][0]["credits_used"] == "0.3000"
