"""The staff dashboard page (test client) and its daily credit-flow selector."""

import datetime
import json
import re
from decimal import Decimal

import pytest
import time_machine

from analytics.dashboard import credit_flow_daily
from billing.models import CreditFlowDaily
from billing.services import credits_consume, credits_purchase
from billing.tests.factories import PlanFactory, SubscriptionFactory, paid_subscription_invoice
from orgs.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/dashboard/"
NOW = datetime.datetime(2026, 11, 20, 12, tzinfo=datetime.UTC)
DATA_SCRIPT = re.compile(r'<script id="dashboard-data" type="application/json">(.*?)</script>', re.S)


def at(day: datetime.date, hour: int = 12):
    return time_machine.travel(datetime.datetime.combine(day, datetime.time(hour), tzinfo=datetime.UTC), tick=False)


@pytest.fixture
def known_month():
    """Purchases and usage on four days (one before the 30-day window), subscriptions in three statuses."""
    buyers = [UserFactory() for _ in range(3)]
    plan = PlanFactory(code="dash-pro", price_minor=4900)
    active = SubscriptionFactory(plan=plan)
    SubscriptionFactory(plan=plan)
    SubscriptionFactory(plan=plan, status="trialing")
    SubscriptionFactory(plan=plan, status="canceled")
    with at(datetime.date(2026, 10, 5)):
        credits_purchase(user=buyers[0], credits=Decimal("100"))
        credits_consume(user=buyers[0], service="embedding", units=1, credits=Decimal("4"))
        paid_subscription_invoice(active, amount_minor=4900)
    for day in (datetime.date(2026, 11, 1), datetime.date(2026, 11, 15)):
        with at(day):
            for index, buyer in enumerate(buyers):
                credits_purchase(user=buyer, credits=Decimal(100 + index))
                credits_consume(user=buyer, service="embedding", units=3, credits=Decimal("2.5") * (index + 1))
    with at(datetime.date(2026, 11, 2)):
        paid_subscription_invoice(active, amount_minor=4900)
    return buyers


def test_credit_flow_daily_sums_the_shards_and_fills_the_gaps(known_month):
    assert CreditFlowDaily.objects.filter(day=datetime.date(2026, 11, 1)).count() > 1  # the buyers' shards differ

    with time_machine.travel(NOW, tick=False):
        flows, hit = credit_flow_daily(30)

    assert not hit
    points = flows["points"]
    assert len(points) == 30
    assert points[0]["day"] == datetime.date(2026, 10, 22)  # 5 October is outside the window
    assert points[-1]["day"] == datetime.date(2026, 11, 20)
    by_day = {point["day"]: (point["purchased"], point["consumed"]) for point in points}
    assert by_day[datetime.date(2026, 11, 1)] == (Decimal("303"), Decimal("15"))
    assert by_day[datetime.date(2026, 11, 15)] == (Decimal("303"), Decimal("15"))
    empty = [day for day, flow in by_day.items() if flow == (Decimal(0), Decimal(0))]
    assert len(empty) == 28


def test_credit_flow_daily_is_cached():
    with time_machine.travel(NOW, tick=False):
        _, first = credit_flow_daily(30)
        _, second = credit_flow_daily(30)
    assert (first, second) == (False, True)


def test_staff_see_the_figures_and_the_chart_data(client, known_month):
    client.force_login(UserFactory(is_staff=True))

    with time_machine.travel(NOW, tick=False):
        response = client.get(DASHBOARD)

    assert response.status_code == 200
    html = response.content.decode()
    for canvas in ("revenue-chart", "credits-chart", "subscriptions-chart"):
        assert f'<canvas id="{canvas}"' in html
    assert "analytics/vendor/chart.umd.min.js" in html
    assert "analytics/dashboard.js" in html
    charts = json.loads(DATA_SCRIPT.search(html).group(1))

    revenue = charts["revenue"]
    assert revenue["currency"] == "USD"
    assert revenue["periods"][0] == "2025-12-01"
    assert revenue["periods"][-1] == "2026-11-01"
    assert revenue["labels"][-2:] == ["Oct 2026", "Nov 2026"]
    # A cent a credit: 100 credits in October, 2 x (100 + 101 + 102) in November.
    assert revenue["purchases"][-2:] == [1.00, 6.06]
    assert revenue["subscriptions"][-2:] == [49.00, 49.00]
    assert sum(revenue["purchases"][:-2]) == sum(revenue["subscriptions"][:-2]) == 0

    credits = charts["credits"]
    assert len(credits["labels"]) == 30
    assert credits["labels"][-1] == "2026-11-20"
    day = credits["labels"].index("2026-11-01")
    assert (credits["purchased"][day], credits["consumed"][day]) == (303.0, 15.0)
    assert sum(credits["purchased"]) == 606.0

    assert charts["subscriptions"] == {
        "statuses": ["trialing", "active", "past_due", "canceled"],
        "labels": ["Trialing", "Active", "Past due", "Canceled"],
        "counts": [1, 2, 0, 1],
    }

    figures = {figure["key"]: figure for figure in response.context["figures"]}
    assert figures["users_active"]["value"] == "3"
    assert figures["mrr"]["value"] == "98.00 USD"
    # Last 30 days: 606 cents of purchases and one 49.00 renewal; the 30 before: 1.00 + 49.00.
    assert figures["revenue_usd"]["value"] == "55.06 USD"
    assert figures["revenue_usd"]["change"] == "+10.12 % against 50.00 USD"
    assert figures["revenue_usd"]["trend"] == "up"
    assert figures["credits_purchased"]["value"] == "606.00"
    assert figures["credits_consumed"]["value"] == "30.00"
    assert figures["credits_consumed"]["change"] == "+650.00 % against 4.00"
    assert 'data-figure="mrr"' in html


def test_an_empty_platform_still_renders(client):
    client.force_login(UserFactory(is_staff=True))

    response = client.get(DASHBOARD)

    assert response.status_code == 200
    charts = json.loads(DATA_SCRIPT.search(response.content.decode()).group(1))
    assert charts["revenue"]["purchases"] == [0.0] * 12
    assert charts["credits"]["purchased"] == [0.0] * 30
    figures = {figure["key"]: figure for figure in response.context["figures"]}
    assert figures["revenue_usd"]["value"] == "0.00 USD"
    assert figures["revenue_usd"]["change"] == "nothing in the previous period to compare with"


@pytest.mark.parametrize("who", ["anonymous", "non-staff"])
def test_anyone_but_staff_is_sent_to_the_admin_login(client, who):
    if who == "non-staff":
        client.force_login(UserFactory())

    response = client.get(DASHBOARD)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={DASHBOARD}"


def test_the_admin_index_links_to_the_dashboard(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    response = client.get("/admin/")

    assert response.status_code == 200
    assert f'href="{DASHBOARD}"' in response.content.decode()
