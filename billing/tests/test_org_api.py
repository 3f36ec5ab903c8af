"""Org billing endpoints: the permission matrix, reads, allocations and the staff list."""

from decimal import Decimal

import pytest

from billing.models import CreditAllocation, CreditPool, CreditTransaction, Subscription
from billing.services import credits_consume
from billing.tests.factories import CreditAllocationFactory, CreditPoolFactory, PlanFactory, SubscriptionFactory
from ops_center.tests.api_support import SchemaCheckedClient, assert_error
from orgs.models import Membership
from orgs.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    org = OrganizationFactory()
    SubscriptionFactory(org=org, plan=PlanFactory(code="pro", name="Pro", price_minor=4900))
    CreditPoolFactory(org=org, total_credits=Decimal("1000"), allocated_credits=Decimal("0"))
    return org


def client_for(org, role: str | None) -> SchemaCheckedClient:
    client = SchemaCheckedClient()
    if role is None:
        return client
    if role == "staff":
        return client.as_user(UserFactory(is_staff=True))
    if role == "outsider":
        return client.as_user(UserFactory())
    return client.as_user(MembershipFactory(org=org, role=role).user)


def urls(org_id: int) -> dict[str, tuple[str, str, dict | None]]:
    base = f"/api/v1/org-billing/organizations/{org_id}"
    return {
        "subscription": ("get", f"{base}/subscription", None),
        "credit_pool": ("get", f"{base}/credit-pool", None),
        "own_allocation": ("get", f"{base}/allocation", None),
        "members_usage": ("get", f"{base}/members/usage", None),
        "allocate": ("post", f"{base}/credit-pool/allocations", {}),
        "all_subscriptions": ("get", "/api/v1/org-billing/subscriptions", None),
    }


# endpoint -> expected status per role
MATRIX = {
    "subscription": {"owner": 200, "admin": 200, "member": 200, "staff": 200, "outsider": 404, None: 401},
    "credit_pool": {"owner": 200, "admin": 200, "member": 403, "staff": 200, "outsider": 404, None: 401},
    "own_allocation": {"owner": 200, "admin": 200, "member": 200, "staff": 200, "outsider": 404, None: 401},
    "members_usage": {"owner": 200, "admin": 200, "member": 403, "staff": 200, "outsider": 404, None: 401},
    "allocate": {"owner": 200, "admin": 200, "member": 403, "staff": 403, "outsider": 404, None: 401},
    "all_subscriptions": {"owner": 403, "admin": 403, "member": 403, "staff": 200, "outsider": 403, None: 401},
}


@pytest.mark.parametrize("endpoint", MATRIX)
@pytest.mark.parametrize("role", ["owner", "admin", "member", "staff", "outsider", None])
def test_permission_matrix(org, endpoint, role):
    client = client_for(org, role)
    method, path, body = urls(org.pk)[endpoint]
    if endpoint == "allocate":
        member = MembershipFactory(org=org).user
        body = {"user_id": member.pk, "credits": "10"}

    response = getattr(client, method)(path, body, format="json") if body else getattr(client, method)(path)

    assert response.status_code == MATRIX[endpoint][role], response.content
    if response.status_code == 404:
        assert response.json()["error"]["code"] == "org_not_found"


def test_an_unknown_org_and_a_foreign_org_look_the_same(org):
    outsider = client_for(org, "outsider")
    foreign = outsider.get(f"/api/v1/org-billing/organizations/{org.pk}/subscription").json()
    missing = outsider.get("/api/v1/org-billing/organizations/999999/subscription").json()
    foreign["error"]["details"].pop("org_id")
    missing["error"]["details"].pop("org_id")
    assert foreign == missing


def test_subscription_shows_plan_period_and_days_left(org):
    body = client_for(org, "member").get(f"/api/v1/org-billing/organizations/{org.pk}/subscription").json()

    assert body["plan"]["code"] == "pro"
    assert body["plan"]["price_minor"] == 4900
    assert body["status"] == "active"
    assert body["days_left"] in (19, 20)  # the factory's period ends 20 days from now


def test_an_org_without_a_subscription_is_404_with_its_own_code():
    org = OrganizationFactory()
    response = client_for(org, "owner").get(f"/api/v1/org-billing/organizations/{org.pk}/subscription")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "subscription_not_found"


def test_a_past_due_subscription_is_still_the_current_one():
    org = OrganizationFactory()
    SubscriptionFactory(org=org, status=Subscription.Status.PAST_DUE)
    body = client_for(org, "owner").get(f"/api/v1/org-billing/organizations/{org.pk}/subscription").json()
    assert body["status"] == "past_due"


def test_pool_reports_total_allocated_used_and_available(org):
    admin = client_for(org, "admin")
    member = MembershipFactory(org=org).user
    admin.post(
        f"/api/v1/org-billing/organizations/{org.pk}/credit-pool/allocations",
        {"user_id": member.pk, "credits": "300"},
        format="json",
    )
    credits_consume(user=member, service="embedding", units=1, credits=Decimal("40"), org_id=org.pk)

    body = admin.get(f"/api/v1/org-billing/organizations/{org.pk}/credit-pool").json()

    assert (body["total"], body["allocated"], body["used"], body["available"]) == (
        "1000.0000",
        "300.0000",
        "40.0000",
        "700.0000",
    )


def allocate(client, org, user, credits, **extra):
    return client.post(
        f"/api/v1/org-billing/organizations/{org.pk}/credit-pool/allocations",
        {"user_id": user.pk, "credits": credits, **extra},
        format="json",
    )


def test_allocation_raises_and_lowers_with_ledger_rows(org):
    admin = client_for(org, "owner")
    member = MembershipFactory(org=org).user

    raised = allocate(admin, org, member, "250", note="Q3 budget")
    lowered = allocate(admin, org, member, "100")

    assert raised.status_code == lowered.status_code == 200
    assert lowered.json()["allocation"]["allocated"] == "100.0000"
    rows = list(
        CreditTransaction.objects.filter(user=member, org=org)
        .order_by("id")
        .values_list("transaction_type", "amount", "credits_before", "credits_after")
    )
    assert rows == [
        ("allocation", Decimal("250"), Decimal("0"), Decimal("250")),
        ("allocation", Decimal("-150"), Decimal("250"), Decimal("100")),
    ]
    assert CreditPool.objects.get(org=org).allocated_credits == Decimal("100")


def test_allocation_never_below_what_was_used(org):
    admin = client_for(org, "owner")
    member = MembershipFactory(org=org).user
    allocate(admin, org, member, "100")
    credits_consume(user=member, service="embedding", units=1, credits=Decimal("60"), org_id=org.pk)

    response = allocate(admin, org, member, "59.9999")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "allocation_below_usage"
    assert CreditAllocation.objects.get(user=member).allocated_credits == Decimal("100")


def test_allocation_beyond_the_pool_is_409_and_writes_nothing(org):
    admin = client_for(org, "owner")
    member = MembershipFactory(org=org).user
    rows_before = CreditTransaction.objects.count()

    response = allocate(admin, org, member, "1000.0001")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "pool_exhausted"
    assert response.json()["error"]["details"]["available"] == "1000.0000"
    assert CreditTransaction.objects.count() == rows_before
    assert CreditPool.objects.get(org=org).allocated_credits == 0


def ledger_and_pool_state():
    return (
        CreditTransaction.objects.count(),
        CreditAllocation.objects.count(),
        CreditPool.objects.get().allocated_credits,
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"credits": "-1"}, 400, "validation_error"),
        ({"credits": "ten"}, 400, "validation_error"),
        ({"credits": "1.00001"}, 400, "validation_error"),
        ({"credits": "NaN"}, 400, "validation_error"),
        ({}, 400, "validation_error"),
        ({"credits": "10", "user_id": "outsider"}, 400, "not_a_member"),
        ({"credits": "10", "user_id": 0}, 400, "validation_error"),
    ],
)
def test_bad_allocations_are_refused_and_write_nothing(org, body, status, code):
    admin = client_for(org, "owner")
    outsider = UserFactory()
    if body.get("user_id") == "outsider":
        body = {**body, "user_id": outsider.pk}
    body.setdefault("user_id", MembershipFactory(org=org).user.pk)
    before = ledger_and_pool_state()

    response = admin.post(f"/api/v1/org-billing/organizations/{org.pk}/credit-pool/allocations", body, format="json")

    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert ledger_and_pool_state() == before


def test_allocation_in_an_unknown_org_is_404_org_not_found_and_writes_nothing(org):
    admin = client_for(org, "owner")
    member = MembershipFactory(org=org).user
    before = ledger_and_pool_state()

    response = admin.post(
        "/api/v1/org-billing/organizations/424242/credit-pool/allocations",
        {"user_id": member.pk, "credits": "1"},
        format="json",
    )

    error = assert_error(response, 404, "org_not_found")
    assert error["details"] == {"org_id": 424242}
    assert ledger_and_pool_state() == before


def test_members_usage_sorts_by_usage_and_pages_without_repeats(org):
    admin = client_for(org, "owner")
    members = [MembershipFactory(org=org).user for _ in range(5)]
    for index, member in enumerate(members):
        allocate(admin, org, member, "100")
        if index:
            credits_consume(user=member, service="embedding", units=1, credits=Decimal(index * 10), org_id=org.pk)

    first = admin.get(f"/api/v1/org-billing/organizations/{org.pk}/members/usage?limit=3").json()
    second = admin.get(
        f"/api/v1/org-billing/organizations/{org.pk}/members/usage?limit=3&cursor={first['next_cursor']}"
    ).json()
    lightest = admin.get(f"/api/v1/org-billing/organizations/{org.pk}/members/usage?sort=usage&limit=1").json()

    usage = [row["usage_in_window"] for row in first["results"] + second["results"]]
    assert usage == ["40.0000", "30.0000", "20.0000", "10.0000", "0.0000", "0.0000"]  # the owner used nothing too
    ids = [row["user_id"] for row in first["results"] + second["results"]]
    assert len(ids) == len(set(ids)) == 6
    assert second["next_cursor"] is None
    assert lightest["results"][0]["usage_in_window"] == "0.0000"
    heaviest = first["results"][0]
    assert (heaviest["allocated"], heaviest["used"], heaviest["remaining"]) == ("100.0000", "40.0000", "60.0000")


@pytest.mark.parametrize("member_count", [2, 25])
def test_members_usage_is_one_query_whatever_the_member_count(org, member_count, django_assert_num_queries):
    admin = client_for(org, "owner")
    for _ in range(member_count):
        CreditAllocationFactory(pool=CreditPool.objects.get(org=org), user=MembershipFactory(org=org).user)
    admin.get(f"/api/v1/org-billing/organizations/{org.pk}/subscription")  # caches the key and role

    with django_assert_num_queries(1):
        assert admin.get(f"/api/v1/org-billing/organizations/{org.pk}/members/usage?days=7").status_code == 200


def test_cached_org_reads_make_no_query(org, django_assert_num_queries):
    admin = client_for(org, "owner")
    for path in ("subscription", "credit-pool", "members/usage"):
        admin.get(f"/api/v1/org-billing/organizations/{org.pk}/{path}")

    with django_assert_num_queries(0):
        for path in ("subscription", "credit-pool", "members/usage"):
            response = admin.get(f"/api/v1/org-billing/organizations/{org.pk}/{path}")
            assert response["X-Cache"] == "HIT"


def test_staff_list_filters_and_pages():
    staff = SchemaCheckedClient().as_user(UserFactory(is_staff=True))
    pro, free = PlanFactory(code="pro-list"), PlanFactory(code="free-list")
    for index in range(5):
        SubscriptionFactory(plan=pro if index % 2 else free, status="active" if index < 3 else "canceled")

    first = staff.get("/api/v1/org-billing/subscriptions?limit=2").json()
    rest = staff.get(f"/api/v1/org-billing/subscriptions?limit=10&cursor={first['next_cursor']}").json()
    canceled = staff.get("/api/v1/org-billing/subscriptions?status=canceled").json()
    pro_only = staff.get("/api/v1/org-billing/subscriptions?plan=pro-list").json()

    ids = [row["id"] for row in first["results"] + rest["results"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == len(set(ids)) == 5
    assert {row["status"] for row in canceled["results"]} == {"canceled"}
    assert len(canceled["results"]) == 2
    assert {row["plan"] for row in pro_only["results"]} == {"pro-list"}
    assert staff.get("/api/v1/org-billing/subscriptions?status=paused").status_code == 400


@pytest.mark.parametrize("subscription_count", [3, 40])
def test_staff_list_is_one_query_per_page(subscription_count, django_assert_num_queries):
    staff = SchemaCheckedClient().as_user(UserFactory(is_staff=True))
    for _ in range(subscription_count):
        SubscriptionFactory()
    staff.get("/api/v1/cache/health")  # caches the key lookup

    with django_assert_num_queries(1):
        assert staff.get("/api/v1/org-billing/subscriptions").status_code == 200


def test_roles_changed_in_the_database_apply_at_once(org, django_capture_on_commit_callbacks):
    member = MembershipFactory(org=org, role=Membership.Role.MEMBER)
    client = SchemaCheckedClient().as_user(member.user)
    assert client.get(f"/api/v1/org-billing/organizations/{org.pk}/credit-pool").status_code == 403

    with django_capture_on_commit_callbacks(execute=True):
        member.role = Membership.Role.ADMIN
        member.save()

    assert client.get(f"/api/v1/org-billing/organizations/{org.pk}/credit-pool").status_code == 200
