"""Read-your-writes through the cache: every write evicts what it changes after commit, and refills what was cached."""

from decimal import Decimal

import pytest
from django.core.cache import cache as django_cache
from django.core.management import call_command
from django.db import transaction

from billing.models import CreditAccount
from billing.selectors.credits import balance_key
from billing.services import credits_adjust, credits_consume, credits_purchase
from ops_center import cache
from orgs.tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_catalog")]

VIEWS = {
    "balance": "/api/v1/credits/balance",
    "summary": "/api/v1/credits/usage/summary",
    "first_page": "/api/v1/credits/transactions",
}


def read_all(client) -> dict:
    return {name: client.get(path) for name, path in VIEWS.items()}


def warm(client, user) -> dict:
    read_all(client)
    cached = read_all(client)
    assert {name: response["X-Cache"] for name, response in cached.items()} == dict.fromkeys(VIEWS, "HIT")
    return {name: response.json() for name, response in cached.items()}


WRITES = {
    "purchase": lambda user: credits_purchase(user=user, credits=Decimal("5")),
    "usage": lambda user: credits_consume(user=user, service="embedding", units=1, credits=Decimal("2")),
    "grant": lambda user: credits_adjust(actor=UserFactory(is_staff=True), user=user, amount=Decimal("3"), reason="r"),
}


@pytest.mark.parametrize("write", WRITES)
def test_each_write_is_visible_on_the_next_read(user_api, user, write):
    credits_purchase(user=user, credits=Decimal("10"))
    before = warm(user_api, user)

    WRITES[write](user)

    after = read_all(user_api)
    # The writer evicted the views and put back their new values (they were cached, so they are read).
    assert {name: response["X-Cache"] for name, response in after.items()} == dict.fromkeys(VIEWS, "HIT")
    assert after["balance"].json() != before["balance"]
    assert after["balance"].json()["balance"] == str(CreditAccount.objects.get(user=user).balance)
    assert after["first_page"].json()["results"][0]["id"] > before["first_page"]["results"][0]["id"]
    if write == "usage":
        assert after["summary"].json()["total_credits"] == "2.0000"


@pytest.mark.parametrize("write", WRITES)
def test_a_write_refills_nothing_that_was_not_cached(user, write):
    """A metering client that never reads pays for no recomputation."""
    credits_purchase(user=user, credits=Decimal("10"))

    WRITES[write](user)

    assert django_cache.get_many(cache.user_keys(user.pk)) == {}


def test_a_write_refills_the_views_in_use_and_only_evicts_those_unread_since_the_last_refill(user_api, user):
    credits_purchase(user=user, credits=Decimal("10"))
    read_all(user_api)
    credits_consume(user=user, service="embedding", units=1, credits=Decimal("2"))  # all three were read: all refilled
    user_api.get(VIEWS["balance"])  # only the balance is read again

    credits_consume(user=user, service="embedding", units=1, credits=Decimal("1"))

    balance = cache.make_key(*balance_key(user_id=user.pk))
    assert django_cache.get(balance)[1]["balance"] == Decimal("7.0000")
    assert django_cache.get_many([key for key in cache.user_keys(user.pk) if key != balance]) == {}


def test_a_client_that_only_writes_pays_for_one_refill_per_read(user_api, user):
    """A metering client that debits and seldom reads: one refill after its read, then deletes only."""
    credits_purchase(user=user, credits=Decimal("10"))
    read_all(user_api)
    keys = cache.user_keys(user.pk)

    WRITES["usage"](user)
    assert len(django_cache.get_many(keys)) == len(keys)  # refilled: they had been read
    WRITES["usage"](user)
    assert django_cache.get_many(keys) == {}  # not read since the refill: deleted only
    WRITES["usage"](user)
    assert django_cache.get_many(keys) == {}

    assert user_api.get(VIEWS["balance"])["X-Cache"] == "MISS"
    WRITES["usage"](user)
    assert list(django_cache.get_many(keys)) == [cache.make_key(*balance_key(user_id=user.pk))]


def test_a_rolled_back_write_evicts_nothing(user_api, user):
    credits_purchase(user=user, credits=Decimal("10"))
    before = warm(user_api, user)

    def purchase_then_fail():
        with transaction.atomic():
            credits_purchase(user=user, credits=Decimal("5"))
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        purchase_then_fail()

    after = read_all(user_api)
    assert {name: response["X-Cache"] for name, response in after.items()} == dict.fromkeys(VIEWS, "HIT")
    assert {name: response.json() for name, response in after.items()} == before


def test_another_users_write_leaves_my_cache_alone(user_api, user):
    credits_purchase(user=user, credits=Decimal("10"))
    warm(user_api, user)

    credits_purchase(user=UserFactory(), credits=Decimal("10"))

    assert user_api.get(VIEWS["balance"])["X-Cache"] == "HIT"


def test_warm_cache_fills_the_most_active_users(api, django_assert_num_queries):
    busy, idle = UserFactory(), UserFactory()
    for user in (busy, idle):
        credits_purchase(user=user, credits=Decimal("100"))
    credits_consume(user=busy, service="embedding", units=1, credits=Decimal("1"))
    busy_api = api.as_user(busy)
    busy_api.get(VIEWS["balance"])  # caches the key lookup
    cache.invalidate_user_cache(busy.pk)

    call_command("warm_cache", "--users", "10", verbosity=0)

    with django_assert_num_queries(0):
        responses = read_all(busy_api)
    assert {name: response["X-Cache"] for name, response in responses.items()} == dict.fromkeys(VIEWS, "HIT")
    assert responses["balance"].json()["balance"] == "99.0000"
    assert cache.get_value("credit_balance", cache.user_part(idle.pk), "balance") is None
