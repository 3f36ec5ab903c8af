"""The staff dashboard's data: headline figures and chart series, from the cached analytics.

The daily credit flow is read from the rollup (days x shards rows, summed per
day), never from the ledger, and cached in the analytics namespace like the
other reports. Everything handed to the page is converted explicitly: money
from integer minor units to major-unit numbers for the charts and to
"12.34 USD" strings for the figures, credits from ``Decimal`` to numbers for
the charts.
"""

from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone

from analytics.selectors import period_starts, platform_analytics, revenue_trends
from billing.models import CreditFlowDaily, Subscription
from billing.money import ZERO_CREDITS, format_minor_units
from ops_center import cache, replicas

FLOW_DAYS = 30
TREND_MONTHS = 12
DASHBOARD_CURRENCY = "USD"


def credit_flow_daily(days: int = FLOW_DAYS) -> tuple[dict, bool]:
    """Credits purchased and consumed per day for the last ``days`` days (today last), no gaps."""
    return cache.get_or_set(
        "analytics", "credit_flow_daily", days, compute=lambda: replicas.read(lambda: _credit_flow_daily_from_db(days))
    )


def _credit_flow_daily_from_db(days: int) -> dict:
    today = timezone.now().date()
    dates = period_starts(interval="day", periods=days, today=today)
    rows = (
        CreditFlowDaily.objects.filter(day__gte=dates[0], day__lte=today)
        .values("day")
        .annotate(purchased=Sum("purchased"), consumed=Sum("consumed"))
        .order_by()
    )
    by_day = {row["day"]: row for row in rows}
    points = []
    for day in dates:
        row = by_day.get(day, {})
        points.append(
            {
                "day": day,
                "purchased": row.get("purchased") or ZERO_CREDITS,
                "consumed": row.get("consumed") or ZERO_CREDITS,
            }
        )
    return {"days": days, "points": points}


def dashboard_data(*, currency: str = DASHBOARD_CURRENCY) -> dict:
    """Everything the dashboard page shows: ``as_of``, ``figures`` (for HTML) and ``charts`` (for JSON)."""
    platform, _ = platform_analytics()
    trends, _ = revenue_trends(interval="month", periods=TREND_MONTHS, currency=currency)
    flows, _ = credit_flow_daily(FLOW_DAYS)
    return {
        "as_of": platform["as_of"],
        "window_days": platform["window_days"],
        "figures": headline_figures(platform, currency=currency),
        "charts": {
            "revenue": revenue_series(trends),
            "credits": credit_series(flows),
            "subscriptions": subscription_series(platform["subscriptions"]["by_status"]),
        },
    }


def headline_figures(platform: dict, *, currency: str = DASHBOARD_CURRENCY) -> list[dict]:
    """One card per figure: ``key``, ``label``, ``value`` and optionally ``change`` and ``trend``."""
    days = platform["window_days"]
    figures = [
        {"key": "users_total", "label": "Users", "value": f"{platform['users']['total']:,}"},
        {
            "key": "users_active",
            "label": f"Active users ({days} days)",
            "value": f"{platform['users']['active_last_30_days']:,}",
        },
        {"key": "orgs_total", "label": "Organizations", "value": f"{platform['organizations']['total']:,}"},
        {
            "key": "mrr",
            "label": "MRR",
            "value": ", ".join(format_minor_units(row["amount_minor"], row["currency"]) for row in platform["mrr"])
            or format_minor_units(0, currency),
        },
    ]
    revenue = platform["revenue"] or [
        {"currency": currency, "last_30_days": 0, "previous_30_days": 0, "change_pct": None}
    ]
    for row in revenue:
        figures.append(
            {
                "key": f"revenue_{row['currency'].lower()}",
                "label": f"Revenue, last {days} days ({row['currency']})",
                "value": format_minor_units(row["last_30_days"], row["currency"]),
                **_change(row, format_minor_units(row["previous_30_days"], row["currency"])),
            }
        )
    for key, label in (("purchased", "Credits purchased"), ("consumed", "Credits consumed")):
        row = platform["credits"][key]
        figures.append(
            {
                "key": f"credits_{key}",
                "label": f"{label}, last {days} days",
                "value": _credits(row["last_30_days"]),
                **_change(row, _credits(row["previous_30_days"])),
            }
        )
    return figures


def _change(row: dict, previous: str) -> dict:
    pct = row["change_pct"]
    if pct is None:
        return {"change": "nothing in the previous period to compare with", "trend": "flat"}
    trend = "up" if pct > 0 else "down" if pct < 0 else "flat"
    return {"change": f"{pct:+.2f} % against {previous}", "trend": trend}


def _credits(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def revenue_series(trends: dict) -> dict:
    """Monthly revenue in major units (numbers), subscriptions and purchases apart."""
    points = trends["points"]
    return {
        "currency": trends["currency"],
        "periods": [point["period_start"].isoformat() for point in points],
        "labels": [point["period_start"].strftime("%b %Y") for point in points],
        "subscriptions": [_major_units(point["subscriptions"]) for point in points],
        "purchases": [_major_units(point["purchases"]) for point in points],
    }


def credit_series(flows: dict) -> dict:
    points = flows["points"]
    return {
        "labels": [point["day"].isoformat() for point in points],
        "purchased": [_number(point["purchased"]) for point in points],
        "consumed": [_number(point["consumed"]) for point in points],
    }


def subscription_series(by_status: dict[str, int]) -> dict:
    statuses = list(by_status)
    return {
        "statuses": statuses,
        "labels": [str(Subscription.Status(status).label) for status in statuses],
        "counts": [int(by_status[status]) for status in statuses],
    }


def _major_units(amount_minor: int) -> float:
    """Two-decimal currencies: 1999 minor units chart as 19.99."""
    return float(Decimal(amount_minor).scaleb(-2))


def _number(credits: Decimal) -> float:
    """Credits as a chart value; the exact amounts stay in the database and the API."""
    return float(credits)
