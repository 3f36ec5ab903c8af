"""Keyset pagination of /api/v1/credits/transactions: stable under inserts, signed cursors, bounded limits."""

import datetime
from decimal import Decimal

import pytest
from django.core import signing
from django.utils import timezone

from billing.models import CreditTransaction
from billing.services import credits_purchase
from billing.tests.factories import CreditPoolFactory, CreditTransactionFactory
from ops_center.api.pagination import MAX_LIMIT
from ops_center.tests.api_support import SchemaCheckedClient, assert_error
from orgs.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

TRANSACTIONS = "/api/v1/credits/transactions"


def buy(user, count: int) -> list[int]:
    return [credits_purchase(user=user, credits=Decimal("1")).transaction.pk for _ in range(count)]


def get_page(client, *, limit: int | None = None, cursor: str | None = None) -> dict:
    params = {}
    if limit is not None:
        params["limit"] = limit
    if cursor is not None:
        params["cursor"] = cursor
    response = client.get(TRANSACTIONS, params)
    assert response.status_code == 200, response.content[:300]
    return response.json()


def all_pages(client, *, limit: int, between_pages=None) -> list[list[int]]:
    pages, cursor = [], None
    while True:
        page = get_page(client, limit=limit, cursor=cursor)
        pages.append([row["id"] for row in page["results"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "pagination does not terminate"
        if between_pages is not None:
            between_pages()


def test_45_rows_page_as_20_20_5_newest_first(user_api, user):
    ids = buy(user, 45)

    pages = all_pages(user_api, limit=20)

    assert [len(page) for page in pages] == [20, 20, 5]
    assert [row_id for page in pages for row_id in page] == sorted(ids, reverse=True)


def test_last_page_has_a_null_next_cursor_and_a_full_last_page_too(user_api, user):
    buy(user, 40)

    pages = all_pages(user_api, limit=20)

    assert [len(page) for page in pages] == [20, 20]  # no empty third page


def test_rows_written_while_paging_cause_no_skip_and_no_repeat(user_api, user):
    original = buy(user, 45)
    written_during = []

    pages = all_pages(user_api, limit=20, between_pages=lambda: written_during.extend(buy(user, 3)))

    served = [row_id for page in pages for row_id in page]
    assert len(written_during) == 6
    assert len(served) == len(set(served)), "a row was served twice"
    assert set(served) == set(original)
    assert [len(page) for page in pages] == [20, 20, 5]


def test_default_limit_is_20(user_api, user):
    buy(user, 45)

    page = get_page(user_api)

    assert len(page["results"]) == 20
    assert page["next_cursor"] is not None


@pytest.mark.parametrize("limit", [1, 100])
def test_limits_at_the_bounds_are_accepted(user_api, user, limit):
    buy(user, 3)

    page = get_page(user_api, limit=limit)

    assert len(page["results"]) == min(limit, 3)


@pytest.mark.parametrize("limit", [str(MAX_LIMIT + 1), "0", "-1", "abc", "1.5", "20x"])
def test_out_of_range_or_non_integer_limit_is_400(user_api, user, limit):
    buy(user, 3)

    response = user_api.get(TRANSACTIONS, {"limit": limit})

    error = assert_error(response, 400, "validation_error")
    assert "limit" in error["details"]


def tamper(cursor: str, position: int) -> str:
    original = cursor[position]
    replacement = "A" if original != "A" else "B"
    tampered = cursor[:position] + replacement + cursor[position + 1 :]
    assert tampered != cursor
    return tampered


@pytest.mark.parametrize("where", ["first", "second", "middle", "last"])
def test_a_tampered_cursor_is_400_invalid_cursor(user_api, user, where):
    buy(user, 5)
    cursor = get_page(user_api, limit=2)["next_cursor"]
    position = {"first": 0, "second": 1, "middle": len(cursor) // 2, "last": len(cursor) - 1}[where]

    response = user_api.get(TRANSACTIONS, {"limit": 2, "cursor": tamper(cursor, position)})

    assert_error(response, 400, "invalid_cursor")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "a:b:c",
        ":::",
        "eyJhIjoxfQ:1tZ9Xy:abc",
        signing.dumps(["2024-01-01T00:00:00+00:00", 1]),  # signed, but not as a cursor (no salt)
        signing.dumps(["2024-01-01T00:00:00+00:00", 1], salt="another.purpose"),
    ],
    ids=["word", "colons", "only-colons", "fake-signature", "unsalted", "other-salt"],
)
def test_a_garbage_cursor_is_400_invalid_cursor(user_api, user, cursor):
    buy(user, 2)

    assert_error(user_api.get(TRANSACTIONS, {"cursor": cursor}), 400, "invalid_cursor")


def test_another_users_cursor_only_ever_shows_the_callers_own_rows(api, user):
    other = UserFactory()
    mine, theirs = [], []
    for _ in range(6):  # interleaved, so a cursor position always has rows of both users around it
        mine.extend(buy(user, 1))
        theirs.extend(buy(other, 1))
    user_client = api.as_user(user)
    first = get_page(user_client, limit=2)
    assert [row["id"] for row in first["results"]] == sorted(mine, reverse=True)[:2]
    users_cursor = first["next_cursor"]

    other_client = type(api)().as_user(other)
    seen, cursor = [], users_cursor
    while True:
        page = get_page(other_client, limit=2, cursor=cursor)
        seen.extend(row["id"] for row in page["results"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen
    assert set(seen) <= set(theirs)
    assert not set(seen) & set(mine)
    assert CreditTransaction.objects.filter(pk__in=seen, user=other).count() == len(seen)


@pytest.mark.parametrize("microsecond", [123456, 0])
def test_rows_with_identical_created_at_page_without_skip_or_repeat(user_api, user, microsecond):
    moment = timezone.now().replace(microsecond=microsecond)
    expected = []
    balance = 0

    def add(created_at: datetime.datetime) -> CreditTransaction:
        nonlocal balance
        row = CreditTransactionFactory(
            user=user, created_at=created_at, amount=Decimal("1"), credits_before=Decimal(balance)
        )
        balance += 1
        expected.append(row)
        return row

    for _ in range(2):
        add(moment - datetime.timedelta(seconds=1))
    for _ in range(7):
        add(moment)
    for _ in range(2):
        add(moment + datetime.timedelta(seconds=1))
    assert CreditTransaction.objects.filter(user=user, created_at=moment).count() == 7

    pages = all_pages(user_api, limit=2)

    served = [row_id for page in pages for row_id in page]
    assert [len(page) for page in pages] == [2, 2, 2, 2, 2, 1]
    assert served == [row.pk for row in sorted(expected, key=lambda row: (row.created_at, row.pk), reverse=True)]


# Issue 12, part 3: each history signs its cursors with its own salt, so a cursor from another
# endpoint is a 400 invalid_cursor, not a filter on the wrong columns (a 500).
def members_usage_cursor() -> tuple[str, str, SchemaCheckedClient]:
    pool = CreditPoolFactory()
    admin = MembershipFactory(org=pool.org, role="admin")
    for _ in range(3):
        MembershipFactory(org=pool.org)
    client = SchemaCheckedClient().as_user(admin.user)
    path = f"/api/v1/org-billing/organizations/{pool.org_id}/members/usage"
    response = client.get(path, {"limit": 1})
    assert response.status_code == 200, response.content
    return path, response.json()["next_cursor"], client


def test_a_transactions_cursor_on_members_usage_is_400_invalid_cursor(user_api, user):
    buy(user, 3)
    transactions_cursor = get_page(user_api, limit=1)["next_cursor"]
    path, _, admin_client = members_usage_cursor()

    assert_error(admin_client.get(path, {"cursor": transactions_cursor}), 400, "invalid_cursor")


def test_a_members_usage_cursor_on_transactions_is_400_invalid_cursor(user_api, user):
    buy(user, 3)
    _, members_cursor, _ = members_usage_cursor()

    assert_error(user_api.get(TRANSACTIONS, {"cursor": members_cursor}), 400, "invalid_cursor")


def test_a_members_usage_cursor_in_the_other_sort_order_is_400_invalid_cursor():
    path, cursor, admin_client = members_usage_cursor()

    assert admin_client.get(path, {"limit": 1, "cursor": cursor}).status_code == 200
    assert_error(admin_client.get(path, {"cursor": cursor, "sort": "usage"}), 400, "invalid_cursor")


def test_a_transactions_cursor_on_the_subscriptions_list_is_400_invalid_cursor(user_api, user):
    buy(user, 3)
    transactions_cursor = get_page(user_api, limit=1)["next_cursor"]
    staff = SchemaCheckedClient().as_user(UserFactory(is_staff=True))

    assert_error(staff.get("/api/v1/org-billing/subscriptions", {"cursor": transactions_cursor}), 400, "invalid_cursor")
