"""The end user's credit endpoints, through the HTTP API, against PostgreSQL and Redis."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.api.serializers import TransactionOut
from billing.models import CreditAccount, CreditTransaction, Invoice, UsageDaily
from billing.selectors.credits import TRANSACTION_COLUMNS
from billing.services import credits_adjust, credits_purchase
from billing.tests.factories import CreditAllocationFactory, CreditPoolFactory
from ops_center.tests.api_support import assert_error
from orgs.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def fund(user, credits: str) -> None:
    credits_purchase(user=user, credits=Decimal(credits))


def test_balance_of_a_new_user_is_zero(user_api):
    response = user_api.get("/api/v1/credits/balance")
    assert response.status_code == 200
    assert response.json() == {"balance": "0.0000", "allocations": [], "total_available": "0.0000"}


def test_balance_shows_allocations_and_total(user_api, user):
    fund(user, "100")
    allocation = CreditAllocationFactory(user=user, allocated_credits=Decimal("50"), used_credits=Decimal("20"))
    MembershipFactory(user=user, org=allocation.pool.org)

    body = user_api.get("/api/v1/credits/balance").json()

    assert body["balance"] == "100.0000"
    assert body["allocations"] == [
        {
            "org_id": allocation.pool.org_id,
            "org_name": allocation.pool.org.name,
            "allocated": "50.0000",
            "used": "20.0000",
            "remaining": "30.0000",
        }
    ]
    assert body["total_available"] == "130.0000"


def test_a_balance_miss_is_one_query_with_exact_decimals_in_org_order(user_api, user, django_assert_num_queries):
    fund(user, "12345678.9999")
    later_org, earlier_org = OrganizationFactory(name="Zeta"), OrganizationFactory(name="Alpha")
    assert later_org.pk < earlier_org.pk  # created first: listed first, whatever the name
    for org, allocated, used in ((earlier_org, "0.0003", "0.0001"), (later_org, "99999.5", "0.25")):
        CreditAllocationFactory(
            user=user, pool__org=org, allocated_credits=Decimal(allocated), used_credits=Decimal(used)
        )

    user_api.get("/api/v1/credits/usage/summary")  # the caller's principal is cached now

    with django_assert_num_queries(1):
        body = user_api.get("/api/v1/credits/balance").json()

    assert body == {
        "balance": "12345678.9999",
        "allocations": [
            {
                "org_id": later_org.pk,
                "org_name": "Zeta",
                "allocated": "99999.5000",
                "used": "0.2500",
                "remaining": "99999.2500",
            },
            {
                "org_id": earlier_org.pk,
                "org_name": "Alpha",
                "allocated": "0.0003",
                "used": "0.0001",
                "remaining": "0.0002",
            },
        ],
        "total_available": "12445678.2501",
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("default_catalog")
def test_cached_balance_costs_no_query_and_a_write_is_read_back_from_the_cache(
    user_api, user, django_assert_num_queries
):
    fund(user, "10")
    first = user_api.get("/api/v1/credits/balance")
    assert first["X-Cache"] == "MISS"
    with django_assert_num_queries(0):
        second = user_api.get("/api/v1/credits/balance")
    assert second["X-Cache"] == "HIT"
    assert second.json() == first.json()

    user_api.post("/api/v1/credits/usage", {"service": "embedding", "units": 10, "credits": "4"}, format="json")

    # The write put the new balance in the cache: the next read is a hit, and exact.
    with django_assert_num_queries(0):
        after = user_api.get("/api/v1/credits/balance")
    assert after["X-Cache"] == "HIT"
    assert after.json()["balance"] == "6.0000"


def test_purchase_of_a_package_writes_invoice_ledger_and_balance(user_api, user):
    response = user_api.post("/api/v1/credits/purchases", {"package": "credits-1k"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["balance"] == "1000.0000"
    assert body["transaction"]["transaction_type"] == "purchase"
    assert body["transaction"]["credits_before"] == "0.0000"
    assert body["transaction"]["credits_after"] == "1000.0000"
    invoice = Invoice.objects.get(pk=body["invoice_id"])
    assert (invoice.status, invoice.amount_minor, invoice.credits, invoice.user_id) == (
        "paid",
        1000,
        Decimal("1000"),
        user.pk,
    )
    assert CreditAccount.objects.get(user=user).balance == Decimal("1000")


def test_custom_purchase_is_priced_per_credit(user_api):
    response = user_api.post("/api/v1/credits/purchases", {"credits": "250"}, format="json")

    assert response.status_code == 201
    assert Invoice.objects.get(pk=response.json()["invoice_id"]).amount_minor == 250


def test_usage_priced_by_rule_debits_the_balance_and_feeds_the_summary(user_api, user):
    fund(user, "100")

    response = user_api.post("/api/v1/credits/usage", {"service": "chat-completion", "units": 3}, format="json")

    assert response.status_code == 201
    assert response.json()["balance"] == "94.0000"  # 3 units at 2 credits each
    summary = user_api.get("/api/v1/credits/usage/summary?days=7").json()
    assert summary["total_credits"] == "6.0000"
    assert summary["by_service"] == [{"service": "chat-completion", "credits": "6.0000", "units": 3, "events": 1}]
    assert len(summary["by_day"]) == 7
    assert summary["by_day"][-1]["credits"] == "6.0000"


def test_usage_beyond_the_balance_is_402_with_the_shortfall_and_writes_nothing(user_api, user):
    fund(user, "5")
    rows_before = CreditTransaction.objects.count()

    response = user_api.post(
        "/api/v1/credits/usage", {"service": "embedding", "units": 1, "credits": "7.5"}, format="json"
    )

    assert response.status_code == 402
    assert response.json()["error"]["code"] == "insufficient_credits"
    assert response.json()["error"]["details"] == {"required": "7.5000", "available": "5.0000", "shortfall": "2.5000"}
    assert CreditTransaction.objects.count() == rows_before
    assert CreditAccount.objects.get(user=user).balance == Decimal("5")
    assert not UsageDaily.objects.exists()


def test_usage_from_an_org_allocation_moves_allocation_and_pool(user_api, user):
    pool = CreditPoolFactory(total_credits=Decimal("1000"), allocated_credits=Decimal("100"))
    allocation = CreditAllocationFactory(pool=pool, user=user, allocated_credits=Decimal("100"))
    MembershipFactory(user=user, org=pool.org)

    response = user_api.post(
        "/api/v1/credits/usage",
        {"service": "embedding", "units": 1, "credits": "30", "org_id": pool.org_id},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["balance"] == "70.0000"
    assert response.json()["transaction"]["org_id"] == pool.org_id
    allocation.refresh_from_db()
    pool.refresh_from_db()
    assert (allocation.used_credits, pool.used_credits) == (Decimal("30"), Decimal("30"))
    too_much = user_api.post(
        "/api/v1/credits/usage",
        {"service": "embedding", "units": 1, "credits": "71", "org_id": pool.org_id},
        format="json",
    )
    assert too_much.status_code == 402
    assert too_much.json()["error"]["details"]["shortfall"] == "1.0000"


def test_usage_in_an_org_the_caller_is_not_in_is_404(user_api, user):
    pool = CreditPoolFactory()
    CreditAllocationFactory(pool=pool)  # someone else's allocation

    response = user_api.post(
        "/api/v1/credits/usage", {"service": "embedding", "units": 1, "org_id": pool.org_id}, format="json"
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "org_not_found"


def test_users_never_see_each_others_credits(api, user):
    fund(user, "42")
    other = UserFactory()
    other_api = api.as_user(other)

    assert other_api.get("/api/v1/credits/balance").json()["balance"] == "0.0000"
    assert other_api.get("/api/v1/credits/transactions").json()["results"] == []


def test_transactions_are_newest_first_and_filterable(user_api, user):
    fund(user, "10")
    user_api.post("/api/v1/credits/usage", {"service": "embedding", "units": 1, "credits": "1"}, format="json")
    credits_adjust(actor=UserFactory(is_staff=True), user=user, amount=Decimal("5"), reason="goodwill")

    everything = user_api.get("/api/v1/credits/transactions").json()["results"]
    usage_only = user_api.get("/api/v1/credits/transactions?transaction_type=usage").json()["results"]

    assert [row["transaction_type"] for row in everything] == ["adjustment", "usage", "purchase"]
    assert [row["credits_after"] for row in everything] == ["14.0000", "9.0000", "10.0000"]
    assert [row["transaction_type"] for row in usage_only] == ["usage"]
    future = user_api.get("/api/v1/credits/transactions?created_after=2999-01-01T00:00:00Z").json()
    assert future == {"results": [], "next_cursor": None}


def test_packages_are_listed(user_api):
    codes = [package["code"] for package in user_api.get("/api/v1/credits/packages").json()]
    assert codes == ["credits-1k", "credits-10k", "credits-100k"]


@pytest.mark.parametrize(
    ("path", "expected_queries"),
    [
        # auth (1) + last_used_at (1) + the account beside its allocations (1)
        ("/api/v1/credits/balance", 3),
        # auth (1) + last_used_at (1) + rollup (1)
        ("/api/v1/credits/usage/summary", 3),
        # auth (1) + last_used_at (1) + one page (1)
        ("/api/v1/credits/transactions", 3),
    ],
)
@pytest.mark.parametrize("history_size", [3, 60])
def test_reads_make_a_fixed_number_of_queries(
    user_api, user, path, expected_queries, history_size, django_assert_num_queries
):
    for _ in range(history_size):
        credits_purchase(user=user, credits=Decimal("1"))
    with django_assert_num_queries(expected_queries):
        assert user_api.get(path).status_code == 200


@pytest.mark.parametrize(("credits", "description"), [("1", "Purchase: 1 credit"), ("250", "Purchase: 250 credits")])
def test_a_custom_purchase_is_described_in_plain_words(user_api, credits, description):
    response = user_api.post("/api/v1/credits/purchases", {"credits": credits}, format="json")

    assert response.status_code == 201
    assert response.json()["transaction"]["description"] == description


def test_a_written_ledger_row_is_shown_with_the_columns_history_selects():
    assert list(TransactionOut().fields) == list(TRANSACTION_COLUMNS)


def test_a_purchase_writes_its_invoice_once_and_paid(user):
    table = Invoice._meta.db_table

    with CaptureQueriesContext(connection) as queries:
        result = credits_purchase(user=user, credits=Decimal("3"))

    assert [query["sql"].split()[0] for query in queries.captured_queries if table in query["sql"]] == ["INSERT"]
    invoice = Invoice.objects.get(pk=result.invoice.pk)
    assert (invoice.status, invoice.credits, invoice.user_id) == (Invoice.Status.PAID, Decimal("3"), user.pk)
    assert invoice.paid_at is not None
    assert result.transaction.metadata["invoice_id"] == invoice.pk


def test_a_declined_purchase_leaves_no_invoice_and_no_credits(user_api, user, settings):
    settings.PAYMENT_GATEWAY = "billing.tests.test_billing_cycles.DecliningGateway"

    # the first by the ordinary path, the second by the fast one (the key is known by then)
    answers = [user_api.post("/api/v1/credits/purchases", {"credits": "3"}, format="json") for _ in range(2)]

    for answer in answers:
        assert_error(answer, 402, "payment_declined")
    assert answers[0].content == answers[1].content
    assert not Invoice.objects.filter(user=user).exists()
    assert not CreditTransaction.objects.filter(user=user).exists()
    assert not CreditAccount.objects.filter(user=user, balance__gt=0).exists()
