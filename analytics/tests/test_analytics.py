"""Platform analytics and revenue trends: rollups kept live equal a rebuild, and reads stay O(days)."""

import datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command

from billing.allocations import pool_allocate
from billing.models import CreditFlowDaily, OrgUsageDaily, RevenueDaily, UsageDaily, UserActivity
from billing.services import credits_adjust, credits_consume, credits_purchase
from billing.tests.factories import CreditPoolFactory, PlanFactory, SubscriptionFactory
from ops_center.tests.api_support import SchemaCheckedClient
from orgs.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

ROLLUP_MODELS = (UsageDaily, OrgUsageDaily, UserActivity, CreditFlowDaily, RevenueDaily)


def rollup_snapshot() -> dict:
    """Every rollup's rows, summed over shards, so live and rebuilt tables compare by content."""
    flows: dict = {}
    for row in CreditFlowDaily.objects.values("day", "purchased", "consumed", "granted", "refreshed"):
        totals = flows.setdefault(row["day"], [Decimal(0)] * 4)
        for index, column in enumerate(("purchased", "consumed", "granted", "refreshed")):
            totals[index] += row[column]
    revenue: dict = {}
    for row in RevenueDaily.objects.values("day", "currency", "source", "amount_minor", "invoices"):
        key = (row["day"], row["currency"], row["source"])
        amount, count = revenue.get(key, (0, 0))
        revenue[key] = (amount + row["amount_minor"], count + row["invoices"])
    return {
        "usage": sorted(
            (user_id, org_id or 0, *rest)
            for user_id, org_id, *rest in UsageDaily.objects.values_list(
                "user_id", "org_id", "day", "service", "credits", "units", "events"
            )
        ),
        "org_usage": sorted(OrgUsageDaily.objects.values_list("org_id", "day", "credits")),
        "activity": sorted(UserActivity.objects.values_list("user_id", "last_usage_on")),
        "flows": flows,
        "revenue": revenue,
    }


@pytest.fixture
def busy_month():
    """Three days of purchases, usage (personal and from an org), grants and allocations."""
    staff = UserFactory(is_staff=True)
    users = [UserFactory() for _ in range(4)]
    org = OrganizationFactory()
    CreditPoolFactory(org=org, total_credits=Decimal("500"))
    owner = MembershipFactory(org=org, role="owner").user
    MembershipFactory(org=org, user=users[0])
    for day in (1, 2, 15):
        with time_machine.travel(datetime.datetime(2026, 11, day, 12, tzinfo=datetime.UTC), tick=False):
            for index, user in enumerate(users):
                credits_purchase(user=user, credits=Decimal(100 + index))
                credits_consume(user=user, service="embedding", units=3, credits=Decimal("2.5") * (index + 1))
                credits_consume(user=user, service="chat-completion", units=2)
            pool_allocate(actor=owner, org_id=org.pk, user_id=users[0].pk, credits=Decimal(10 * day))
            credits_consume(user=users[0], service="embedding", units=1, credits=Decimal("7"), org_id=org.pk)
            credits_adjust(actor=staff, user=users[1], amount=Decimal("-1.5"), reason="correction")
            credits_adjust(actor=staff, user=users[2], amount=Decimal("10"), reason="goodwill")
    return users, org


def test_rebuild_gives_the_numbers_the_live_upkeep_wrote(busy_month):
    live = rollup_snapshot()
    assert live["usage"]
    assert live["org_usage"]
    assert live["revenue"]
    for model in ROLLUP_MODELS:
        model.objects.all().delete()

    call_command("rebuild_rollups", verbosity=0)

    assert rollup_snapshot() == live


def test_rebuild_of_one_day_leaves_the_others_alone(busy_month):
    live = rollup_snapshot()
    UsageDaily.objects.filter(day=datetime.date(2026, 11, 2)).update(credits=Decimal("999"))

    call_command("rebuild_rollups", "--from", "2026-11-02", "--to", "2026-11-02", verbosity=0)

    assert rollup_snapshot() == live


def test_live_flows_add_up(busy_month):
    day = datetime.date(2026, 11, 1)
    flows = rollup_snapshot()["flows"][day]
    # purchased 100+101+102+103; consumed 2.5*(1+2+3+4) + 4 users * 2 units * 2 credits + 7 from the org
    assert flows == [Decimal("406"), Decimal("25") + Decimal("16") + Decimal("7"), Decimal("8.5"), Decimal("0")]


def test_seed_demo_rollups_match_a_rebuild():
    call_command("seed_demo", "--users", "40", "--orgs", "4", "--transactions", "1200", "--seed", "3", verbosity=0)
    seeded = rollup_snapshot()
    assert seeded["revenue"]
    assert seeded["flows"]
    assert seeded["activity"]

    call_command("rebuild_rollups", verbosity=0)

    assert rollup_snapshot() == seeded


@pytest.fixture
def staff_api():
    return SchemaCheckedClient().as_user(UserFactory(is_staff=True))


def test_platform_analytics_reports_the_window(staff_api, busy_month):
    pro = PlanFactory(code="pro-a", price_minor=5000)
    yearly = PlanFactory(code="yearly-a", price_minor=60000, interval="year")
    SubscriptionFactory(plan=pro)
    SubscriptionFactory(plan=yearly)
    SubscriptionFactory(plan=pro, status="canceled")
    _, org = busy_month

    with time_machine.travel(datetime.datetime(2026, 11, 20, 12, tzinfo=datetime.UTC), tick=False):
        body = staff_api.get("/api/v1/org-billing/analytics/platform").json()

    assert body["users"]["active_last_30_days"] == 4
    assert body["subscriptions"]["by_status"] == {"trialing": 0, "active": 2, "past_due": 0, "canceled": 1}
    assert body["subscriptions"]["live_by_plan"] == {"pro-a": 1, "yearly-a": 1}
    assert body["mrr"] == [{"currency": "USD", "amount_minor": 5000 + 5000}]
    purchases_minor = 3 * (100 + 101 + 102 + 103)  # a cent a credit
    assert body["revenue"] == [
        {"currency": "USD", "last_30_days": purchases_minor, "previous_30_days": 0, "change_pct": None}
    ]
    assert body["credits"]["purchased"]["last_30_days"] == "1218.0000"
    assert body["top_orgs"] == [{"org_id": org.pk, "name": org.name, "credits_used": "21.0000"}]


def test_revenue_trends_have_no_gaps(staff_api, busy_month):
    with time_machine.travel(datetime.datetime(2026, 11, 20, 12, tzinfo=datetime.UTC), tick=False):
        daily = staff_api.get("/api/v1/org-billing/analytics/revenue-trends?interval=day&periods=20").json()
        monthly = staff_api.get("/api/v1/org-billing/analytics/revenue-trends?interval=month&periods=3").json()
        weekly = staff_api.get("/api/v1/org-billing/analytics/revenue-trends?interval=week&periods=4").json()

    assert [point["period_start"] for point in daily["points"]][:3] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert [point["total"] for point in daily["points"]][:4] == [406, 406, 0, 0]
    assert [point["period_start"] for point in monthly["points"]] == ["2026-09-01", "2026-10-01", "2026-11-01"]
    assert [point["purchases"] for point in monthly["points"]] == [0, 0, 3 * 406]
    # 1 Nov is a Sunday: its week began on 26 Oct; 2 Nov opens the next, 15 Nov closes the third.
    weeks = ["2026-10-26", "2026-11-02", "2026-11-09", "2026-11-16"]
    assert [point["period_start"] for point in weekly["points"]] == weeks
    assert [point["total"] for point in weekly["points"]] == [406, 406, 406, 0]


@pytest.mark.parametrize(
    "path", ["/api/v1/org-billing/analytics/platform", "/api/v1/org-billing/analytics/revenue-trends"]
)
def test_analytics_are_staff_only(user_api, path):
    assert user_api.get(path).status_code == 403
    assert SchemaCheckedClient().get(path).status_code == 401


def test_bad_trend_parameters_are_400(staff_api):
    for query in ("interval=hour", "periods=0", "periods=1000", "currency=usd"):
        assert staff_api.get(f"/api/v1/org-billing/analytics/revenue-trends?{query}").status_code == 400


@pytest.mark.parametrize("size", [1, 3])
def test_analytics_cost_a_fixed_number_of_queries(staff_api, size, django_assert_num_queries):
    for _ in range(size):
        user = UserFactory()
        credits_purchase(user=user, credits=Decimal("10"))
        credits_consume(user=user, service="embedding", units=1, credits=Decimal("1"))
    staff_api.get("/api/v1/cache/health")  # caches the key lookup

    with django_assert_num_queries(9):
        assert staff_api.get("/api/v1/org-billing/analytics/platform")["X-Cache"] == "MISS"
    with django_assert_num_queries(1):
        assert staff_api.get("/api/v1/org-billing/analytics/revenue-trends")["X-Cache"] == "MISS"
    with django_assert_num_queries(0):
        assert staff_api.get("/api/v1/org-billing/analytics/platform")["X-Cache"] == "HIT"


@pytest.mark.postgresql_only("reads PostgreSQL's EXPLAIN plans")
def test_no_analytics_query_touches_the_ledger_or_the_invoices():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from analytics.selectors import _platform_from_db, _revenue_trends_from_db

    call_command("seed_demo", "--users", "60", "--orgs", "5", "--transactions", "2000", "--seed", "5", verbosity=0)

    with CaptureQueriesContext(connection) as captured:
        _platform_from_db()
        _revenue_trends_from_db(interval="month", periods=12, currency="USD")

    assert len(captured.captured_queries) == 10
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            cursor.execute(f"EXPLAIN {query['sql']}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "credit_transactions" not in plan
            assert "billing_invoice" not in plan
