"""Cache hits answered before DRF in one Redis round trip (ops_center.api.fast_reads).

Which path answered is read off the real Redis: the fast path sends exactly one
MGET and nothing else; the ordinary path GETs the principal first. Every case checks that
the fast answer is byte for byte the ordinary path's answer, and that anything
the ordinary path would refuse still gets its refusal.
"""

from decimal import Decimal

import pytest
from django.core.cache import cache as django_cache

from billing.models import CreditTransaction
from billing.selectors.credits import CACHED_PAGES
from billing.services import credits_purchase
from billing.tests.factories import CreditPoolFactory, CreditTransactionFactory, PlanFactory, SubscriptionFactory
from ops_center import cache
from ops_center.api import fast_reads
from ops_center.api.keys import hash_api_key
from ops_center.tests.api_support import SchemaCheckedClient, redis_calls
from orgs.models import ApiKey
from orgs.services import api_key_revoke
from orgs.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

COMPARED_HEADERS = ("Content-Type", "Allow", "Vary", "X-Cache", "X-Content-Type-Options", "Referrer-Policy")


def fast_and_ordinary(client: SchemaCheckedClient, path: str):
    """The same GET answered by the fast path, then by the ordinary path, both on a warm cache."""
    client.get(path)  # fills the cache, and teaches this worker whose key it is
    responses = {}
    calls = redis_calls(lambda: responses.setdefault("fast", client.get(path)))
    fast_reads.forget_key_owners()  # the fast path cannot name the keys now: the ordinary path answers
    responses["ordinary"] = client.get(path)
    return responses["fast"], responses["ordinary"], calls


def assert_same_answer(fast, ordinary):
    assert fast.status_code == ordinary.status_code == 200
    assert fast.content == ordinary.content
    for header in COMPARED_HEADERS:
        assert fast.get(header) == ordinary.get(header), header
    assert fast["X-Cache"] == "HIT"


@pytest.fixture
def org():
    org = OrganizationFactory()
    SubscriptionFactory(org=org, plan=PlanFactory(code="pro", name="Pro", price_minor=4900))
    CreditPoolFactory(org=org, total_credits=Decimal("1000"), allocated_credits=Decimal("0"))
    return org


def client_for(user) -> SchemaCheckedClient:
    return SchemaCheckedClient().as_user(user)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/credits/balance",
        "/api/v1/credits/usage/summary",
        "/api/v1/credits/usage/summary?days=30",
        "/api/v1/credits/transactions",
        "/api/v1/credits/transactions?limit=20",
    ],
)
def test_a_users_hot_reads_are_one_mget_and_the_same_bytes(path, django_assert_num_queries):
    user = UserFactory()
    credits_purchase(user=user, credits=Decimal("12.5"))
    client = client_for(user)
    client.get(path)
    with django_assert_num_queries(0):
        fast, ordinary, calls = fast_and_ordinary(client, path)
    assert calls == {"mget": 1}
    assert_same_answer(fast, ordinary)


@pytest.mark.parametrize(
    ("view", "role"),
    [
        ("subscription", "member"),
        ("subscription", "admin"),
        ("subscription", "staff"),
        ("credit-pool", "owner"),
        ("credit-pool", "staff"),
        ("members/usage", "admin"),
        ("members/usage?days=30&sort=-usage&limit=20", "admin"),
    ],
)
def test_org_reads_are_one_mget_for_whoever_may_read_them(org, view, role):
    user = UserFactory(is_staff=True) if role == "staff" else MembershipFactory(org=org, role=role).user
    fast, ordinary, calls = fast_and_ordinary(client_for(user), f"/api/v1/org-billing/organizations/{org.pk}/{view}")
    assert calls == {"mget": 1}
    assert_same_answer(fast, ordinary)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/org-billing/analytics/platform",
        "/api/v1/org-billing/analytics/revenue-trends",
        "/api/v1/org-billing/analytics/revenue-trends?interval=month&periods=12",
        "/api/v1/org-billing/analytics/revenue-trends?interval=day&periods=7&currency=EUR",
    ],
)
def test_staff_analytics_are_one_mget(path):
    fast, ordinary, calls = fast_and_ordinary(client_for(UserFactory(is_staff=True)), path)
    assert calls == {"mget": 1}
    assert_same_answer(fast, ordinary)


@pytest.mark.parametrize(
    ("view", "role", "status"),
    [
        ("credit-pool", "member", 403),
        ("members/usage", "member", 403),
        ("subscription", "outsider", 404),
        ("credit-pool", "outsider", 404),
    ],
)
def test_a_refused_caller_gets_the_ordinary_refusal_even_with_everything_cached(org, view, role, status):
    path = f"/api/v1/org-billing/organizations/{org.pk}/{view}"
    client_for(MembershipFactory(org=org, role="admin").user).get(path)  # the payload is cached
    user = UserFactory() if role == "outsider" else MembershipFactory(org=org, role=role).user
    client = client_for(user)
    first = client.get(path)  # caches the caller's role (or its absence)
    again = client.get(path)
    assert first.status_code == again.status_code == status
    assert again.content == first.content


def test_analytics_refuse_a_non_staff_caller_with_the_cache_warm():
    path = "/api/v1/org-billing/analytics/platform"
    client_for(UserFactory(is_staff=True)).get(path)
    user_client = client_for(UserFactory())
    user_client.get(path)
    assert user_client.get(path).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_a_revoked_key_is_refused_although_this_worker_remembers_its_owner():
    user = UserFactory()
    client = client_for(user)
    assert client.get("/api/v1/credits/balance").status_code == 200
    assert hash_api_key(client.raw_key) in fast_reads._key_owners

    api_key_revoke(api_key=ApiKey.objects.get(user=user))

    response = client.get("/api/v1/credits/balance")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.django_db(transaction=True)
def test_a_deactivated_user_is_refused_although_this_worker_remembers_the_key():
    user = UserFactory()
    client = client_for(user)
    assert client.get("/api/v1/credits/balance").status_code == 200
    user.is_active = False
    user.save()

    assert client.get("/api/v1/credits/balance").status_code == 401


@pytest.mark.parametrize(
    "query",
    ["days=7", "days=030", "days=30&days=30", "days=30&extra=1", "days="],
)
def test_any_other_query_string_takes_the_ordinary_path(query):
    client = client_for(UserFactory())
    client.get("/api/v1/credits/usage/summary")
    ordinary = client.get(f"/api/v1/credits/usage/summary?{query}")
    calls = redis_calls(lambda: client.get(f"/api/v1/credits/usage/summary?{query}"))
    assert calls.get("get") == 1  # the ordinary path: the principal by GET, not in the fast path's one MGET
    assert ordinary.status_code in (200, 400)


def test_a_payload_past_its_soft_expiry_is_recomputed_by_the_ordinary_path():
    user = UserFactory()
    client = client_for(user)
    client.get("/api/v1/credits/balance")
    key = cache.make_key("credit_balance", cache.user_part(user.pk), "balance")
    _, value = django_cache.get(key)
    django_cache.set(key, (0.0, {**value, "balance": "999.0000"}), 60)  # stale, and visibly different

    response = client.get("/api/v1/credits/balance")
    assert response.json()["balance"] == "0.0000"
    assert response["X-Cache"] == "MISS"


def test_an_unreachable_cache_falls_back_to_the_database():
    user = UserFactory()
    credits_purchase(user=user, credits=Decimal("3"))
    client = client_for(user)
    client.get("/api/v1/credits/balance")
    cache.breaker.record_failure()  # as a Redis error would: every cache call is a miss for the cooldown
    try:
        response = client.get("/api/v1/credits/balance")
    finally:
        cache.breaker.reset()
    assert response.status_code == 200
    assert response.json()["balance"] == "3.0000"
    assert response["X-Cache"] == "MISS"


def test_hits_served_here_are_counted_in_the_cache_stats():
    client = client_for(UserFactory())
    client.get("/api/v1/credits/balance")
    before = cache.get_stats()["namespaces"]
    calls = redis_calls(lambda: client.get("/api/v1/credits/balance"))
    after = cache.get_stats()["namespaces"]
    assert "mget" in calls
    assert after["credit_balance"]["hits"] == before["credit_balance"]["hits"] + 1
    assert after["user_tier"]["hits"] == before["user_tier"]["hits"] + 1


def history(client, *, pages: int) -> list[tuple[list[int], str]]:
    """Page through /credits/transactions from the first page: (row ids, X-Cache) of each page."""
    seen, path = [], "/api/v1/credits/transactions?limit=20"
    for _ in range(pages):
        response = client.get(path)
        assert response.status_code == 200
        body = response.json()
        seen.append(([row["id"] for row in body["results"]], response["X-Cache"]))
        if body["next_cursor"] is None:
            break
        path = f"/api/v1/credits/transactions?cursor={body['next_cursor']}"
    return seen


@pytest.mark.parametrize("rows", [0, 19, 20, 45, 60, 75])
def test_the_first_pages_of_history_are_cached_together_and_match_the_ledger(rows, django_assert_num_queries):
    user = UserFactory()
    for _ in range(rows):
        CreditTransactionFactory(user=user)
    newest_first = list(
        CreditTransaction.objects.filter(user=user).order_by("-created_at", "-id").values_list("id", flat=True)
    )
    client = client_for(user)
    client.get("/api/v1/credits/balance")  # the key's owner is known: every page may take the fast path

    cold = history(client, pages=5)
    with django_assert_num_queries(0):
        warm = history(client, pages=CACHED_PAGES)

    assert [row_id for ids, _ in cold for row_id in ids] == newest_first
    assert [ids for ids, _ in warm] == [ids for ids, _ in cold[:CACHED_PAGES]]
    assert [hit for _, hit in warm] == ["HIT"] * len(warm)
    assert [hit for _, hit in cold[1:CACHED_PAGES]] == ["HIT"] * len(cold[1:CACHED_PAGES])
    assert all(hit == "MISS" for _, hit in cold[CACHED_PAGES:])  # beyond the cached pages: the database


def test_a_cached_next_page_is_one_mget_and_the_same_bytes():
    user = UserFactory()
    for _ in range(30):
        CreditTransactionFactory(user=user)
    client = client_for(user)
    cursor = client.get("/api/v1/credits/transactions").json()["next_cursor"]
    fast, ordinary, calls = fast_and_ordinary(client, f"/api/v1/credits/transactions?cursor={cursor}")
    assert calls == {"mget": 1}
    assert_same_answer(fast, ordinary)


@pytest.mark.django_db(transaction=True)
def test_a_cursor_from_before_a_write_still_pages_on_without_a_gap_or_a_repeat():
    user = UserFactory()
    for _ in range(30):
        CreditTransactionFactory(user=user)
    client = client_for(user)
    first = client.get("/api/v1/credits/transactions").json()

    credits_purchase(user=user, credits=Decimal("1"))  # refills the cached pages: their boundaries move

    second = client.get(f"/api/v1/credits/transactions?cursor={first['next_cursor']}")
    older = list(
        CreditTransaction.objects.filter(user=user).order_by("-created_at", "-id").values_list("id", flat=True)
    )[21:]
    assert [row["id"] for row in second.json()["results"]] == older[:20]
