"""The write throttle's sliding window, on the real Redis, with the clock moved by time-machine."""

import datetime
from decimal import Decimal

import pytest
import time_machine

from billing.models import CreditTransaction
from billing.services import credits_purchase
from ops_center.api.throttling import WriteRateThrottle

pytestmark = pytest.mark.django_db

USAGE = "/api/v1/credits/usage"
BODY = {"service": "embedding", "units": 1, "credits": "1"}
# The start of a minute-long window (windows are aligned on the epoch).
WINDOW_START = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def ten_writes_per_minute(monkeypatch, user):
    monkeypatch.setattr(WriteRateThrottle, "THROTTLE_RATES", {"writes": "10/min"})
    credits_purchase(user=user, credits=Decimal("1000"))


def writes_at(api, moment: datetime.datetime, count: int) -> list[int]:
    with time_machine.travel(moment, tick=False):
        return [api.post(USAGE, BODY, format="json").status_code for _ in range(count)]


@pytest.mark.usefixtures("ten_writes_per_minute")
def test_the_previous_window_counts_by_how_much_of_it_still_overlaps(user_api, user):
    late_in_a_window = WINDOW_START + datetime.timedelta(seconds=50)
    assert writes_at(user_api, late_in_a_window, 11) == [201] * 10 + [429]

    # 6 s into the next window, 90 % of the last one still overlaps: 11 x 0.9 = 9.9, room for none.
    assert writes_at(user_api, WINDOW_START + datetime.timedelta(seconds=66), 1) == [429]
    # Halfway through it, half of those 11 still count, and so does the refused attempt just made.
    assert writes_at(user_api, WINDOW_START + datetime.timedelta(seconds=90), 5) == [201, 201, 201, 429, 429]

    assert CreditTransaction.objects.filter(user=user, transaction_type="usage").count() == 13


@pytest.mark.usefixtures("ten_writes_per_minute")
def test_retry_after_is_when_the_old_window_has_faded_enough(user_api):
    writes_at(user_api, WINDOW_START + datetime.timedelta(seconds=59), 10)

    with time_machine.travel(WINDOW_START + datetime.timedelta(seconds=61), tick=False):
        refused = user_api.post(USAGE, BODY, format="json")

    # 10 x (1 - 1/60) + 1 > 10. The next attempt will be this window's second, so the previous
    # window has to fade to 8/10 of its weight: 12 s in, 11 s from now.
    assert refused.status_code == 429
    assert refused["Retry-After"] == "11"
    assert writes_at(user_api, WINDOW_START + datetime.timedelta(seconds=72), 1) == [201]
