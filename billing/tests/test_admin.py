import datetime
import itertools
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.models import (
    CreditAccount,
    CreditAllocation,
    CreditFlowDaily,
    CreditPackage,
    CreditPool,
    CreditTransaction,
    Invoice,
    OrgUsageDaily,
    Plan,
    PricingRule,
    RevenueDaily,
    Subscription,
    UsageDaily,
    UserActivity,
)
from billing.tests.factories import (
    CreditAccountFactory,
    CreditAllocationFactory,
    CreditPoolFactory,
    CreditTransactionFactory,
    InvoiceFactory,
    PlanFactory,
    SubscriptionFactory,
)
from ops_center.tests.admin_support import admin_url
from orgs.tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

_numbers = itertools.count()


def usage_daily_row() -> UsageDaily:
    return UsageDaily.objects.create(
        user=UserFactory(), org=OrganizationFactory(), day=datetime.date(2030, 1, 2), service="chat", credits=3
    )


# model -> builds one row with its own related rows (org included), so an N+1 shows up.
ADMIN_ROWS = {
    Plan: PlanFactory,
    RevenueDaily: lambda: RevenueDaily.objects.create(
        day=datetime.date(2030, 1, 2), currency="USD", source="credit_purchase", shard=next(_numbers), amount_minor=5
    ),
    CreditFlowDaily: lambda: CreditFlowDaily.objects.create(day=datetime.date(2030, 1, 2), shard=next(_numbers)),
    OrgUsageDaily: lambda: OrgUsageDaily.objects.create(org=OrganizationFactory(), day=datetime.date(2030, 1, 2)),
    UserActivity: lambda: UserActivity.objects.create(user=UserFactory(), last_usage_on=datetime.date(2030, 1, 2)),
    CreditPackage: lambda: CreditPackage.objects.create(
        code=f"pack-{next(_numbers)}", name="Pack", credits=Decimal("500"), price_minor=900
    ),
    PricingRule: lambda: PricingRule.objects.create(service=f"svc-{next(_numbers)}", credits_per_unit=Decimal("2")),
    UsageDaily: usage_daily_row,
    Subscription: SubscriptionFactory,
    CreditPool: CreditPoolFactory,
    CreditAllocation: CreditAllocationFactory,
    CreditAccount: CreditAccountFactory,
    CreditTransaction: lambda: CreditTransactionFactory(org=OrganizationFactory()),
    Invoice: lambda: InvoiceFactory(org=OrganizationFactory()),
}


def changelist_query_count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def make_rows(model, count: int) -> list:
    return [ADMIN_ROWS[model]() for _ in range(count)]


def test_every_billing_model_is_registered_and_covered_here():
    models = set(apps.get_app_config("billing").get_models())

    assert {model for model in models if not admin.site.is_registered(model)} == set()
    assert models == set(ADMIN_ROWS)


@pytest.mark.parametrize("model", ADMIN_ROWS, ids=lambda model: model.__name__)
def test_changelist_and_change_page_load(admin_client, model):
    [row] = make_rows(model, 1)

    changelist = admin_client.get(admin_url(model, "changelist"))
    change_page = admin_client.get(admin_url(model, "change", row.pk))

    assert changelist.status_code == 200
    assert row in changelist.context["cl"].result_list
    assert change_page.status_code == 200
    assert change_page.context["original"] == row


@pytest.mark.parametrize("model", ADMIN_ROWS, ids=lambda model: model.__name__)
def test_changelist_query_count_does_not_grow_with_rows(admin_client, model):
    url = admin_url(model, "changelist")
    make_rows(model, 2)
    changelist_query_count(admin_client, url)  # warm per-process caches
    few = changelist_query_count(admin_client, url)

    make_rows(model, 10)

    assert changelist_query_count(admin_client, url) == few


def test_ledger_changelist_runs_the_same_queries_for_3_and_30_rows(admin_client, django_assert_num_queries):
    url = admin_url(CreditTransaction, "changelist")
    make_rows(CreditTransaction, 3)
    changelist_query_count(admin_client, url)  # warm per-process caches
    with CaptureQueriesContext(connection) as three_rows:
        admin_client.get(url)

    make_rows(CreditTransaction, 27)

    with django_assert_num_queries(len(three_rows)):
        response = admin_client.get(url)
    assert len(response.context["cl"].result_list) == 30


def test_ledger_changelist_ignores_a_request_for_facet_counts(admin_client):
    make_rows(CreditTransaction, 2)

    response = admin_client.get(admin_url(CreditTransaction, "changelist"), {"_facets": ""})

    assert response.status_code == 200
    assert response.context["cl"].add_facets is False


def test_ledger_rows_cannot_be_added_from_the_admin(admin_client):
    user = UserFactory()

    page = admin_client.get(admin_url(CreditTransaction, "add"))
    post = admin_client.post(
        admin_url(CreditTransaction, "add"),
        {"user": user.pk, "transaction_type": "adjustment", "amount": "5", "credits_before": "0", "credits_after": "5"},
    )

    assert page.status_code == 403
    assert post.status_code == 403
    assert not CreditTransaction.objects.exists()


def test_ledger_rows_cannot_be_changed_from_the_admin(admin_client):
    [txn] = make_rows(CreditTransaction, 1)

    response = admin_client.post(
        admin_url(CreditTransaction, "change", txn.pk),
        {
            "user": txn.user_id,
            "transaction_type": "refund",
            "amount": "999",
            "credits_before": "0",
            "credits_after": "999",
            "description": "edited",
            "_save": "Save",
        },
    )

    assert response.status_code == 403
    stored = CreditTransaction.objects.get(pk=txn.pk)
    assert (stored.transaction_type, stored.amount, stored.description) == ("purchase", Decimal("100"), "test row")


def test_ledger_rows_cannot_be_deleted_from_the_admin(admin_client):
    [txn] = make_rows(CreditTransaction, 1)

    page = admin_client.get(admin_url(CreditTransaction, "delete", txn.pk))
    post = admin_client.post(admin_url(CreditTransaction, "delete", txn.pk), {"post": "yes"})
    changelist = admin_client.get(admin_url(CreditTransaction, "changelist"))

    assert page.status_code == 403
    assert post.status_code == 403
    assert CreditTransaction.objects.filter(pk=txn.pk).exists()
    assert changelist.context["action_form"] is None
    assert "delete_selected" not in changelist.content.decode()


def test_ledger_detail_page_shows_every_field_read_only(admin_client):
    txn = CreditTransactionFactory(description="welcome bonus", idempotency_key="idem-42")

    response = admin_client.get(admin_url(CreditTransaction, "change", txn.pk))

    content = response.content.decode()
    assert response.status_code == 200
    assert "welcome bonus" in content
    assert "idem-42" in content
    assert 'name="amount"' not in content
    assert 'name="description"' not in content
    assert 'name="_save"' not in content


def test_ledger_search_by_exact_username_or_email_lists_only_that_users_rows(admin_client):
    alice = CreditTransactionFactory(user=UserFactory(username="alice"))
    alicia = CreditTransactionFactory(user=UserFactory(username="alicia", email="alicia@example.test"))
    url = admin_url(CreditTransaction, "changelist")

    by_username = admin_client.get(url, {"q": "ALICE"})
    by_email = admin_client.get(url, {"q": " alicia@example.test "})
    nobody = admin_client.get(url, {"q": "ali"})

    assert list(by_username.context["cl"].result_list) == [alice]
    assert list(by_email.context["cl"].result_list) == [alicia]
    assert list(nobody.context["cl"].result_list) == []


def test_credit_account_ledger_link_lists_only_that_users_rows(admin_client):
    account = CreditAccountFactory()
    older = CreditTransactionFactory(user=account.user)
    newer = CreditTransactionFactory(user=account.user, credits_before=Decimal("100"))
    CreditTransactionFactory()  # another user's row
    ledger_url = f"{admin_url(CreditTransaction, 'changelist')}?user__id__exact={account.user_id}"

    accounts = admin_client.get(admin_url(CreditAccount, "changelist"))
    ledger = admin_client.get(ledger_url)

    assert f'href="{ledger_url}"' in accounts.content.decode()
    assert list(ledger.context["cl"].result_list) == [newer, older]


def test_credit_account_balance_cannot_be_added_edited_or_deleted(admin_client):
    account = CreditAccountFactory(balance=Decimal("50"))

    add = admin_client.get(admin_url(CreditAccount, "add"))
    change = admin_client.post(
        admin_url(CreditAccount, "change", account.pk), {"user": account.user_id, "balance": "1000000"}
    )
    delete = admin_client.post(admin_url(CreditAccount, "delete", account.pk), {"post": "yes"})

    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    account.refresh_from_db()
    assert account.balance == Decimal("50")


def test_usage_rollup_rows_cannot_be_added_edited_or_deleted(admin_client):
    row = usage_daily_row()

    add = admin_client.get(admin_url(UsageDaily, "add"))
    change = admin_client.post(
        admin_url(UsageDaily, "change", row.pk),
        {"user": row.user_id, "day": "2030-01-02", "service": "chat", "credits": "0", "units": "0", "events": "0"},
    )
    delete = admin_client.post(admin_url(UsageDaily, "delete", row.pk), {"post": "yes"})

    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    row.refresh_from_db()
    assert row.credits == Decimal("3")


def test_credit_pool_counters_and_org_are_read_only_on_the_change_form(admin_client):
    pool = CreditPoolFactory(total_credits=Decimal("500"), allocated_credits=Decimal("200"))
    original_org_id = pool.org_id
    other_org = OrganizationFactory()

    page = admin_client.get(admin_url(CreditPool, "change", pool.pk))
    response = admin_client.post(
        admin_url(CreditPool, "change", pool.pk),
        {
            "org": other_org.pk,
            "total_credits": "999999",
            "allocated_credits": "0",
            "used_credits": "0",
            "next_refresh_date_0": "2030-01-01",
            "next_refresh_date_1": "00:00:00",
            "_save": "Save",
        },
    )

    assert set(page.context["adminform"].form.fields) == {"next_refresh_date"}
    assert "300.0000" in page.content.decode()  # available_credits, generated by the database
    assert response.status_code == 302
    pool.refresh_from_db()
    assert pool.org_id == original_org_id
    assert (pool.total_credits, pool.allocated_credits) == (Decimal("500"), Decimal("200"))
    assert pool.next_refresh_date.year == 2030


def test_credit_pool_add_form_leaves_the_counters_to_services(admin_client):
    response = admin_client.get(admin_url(CreditPool, "add"))

    assert set(response.context["adminform"].form.fields) == {"org", "next_refresh_date"}


def test_credit_allocation_counters_are_read_only_on_the_change_form(admin_client):
    allocation = CreditAllocationFactory(allocated_credits=Decimal("40"), used_credits=Decimal("10"))

    response = admin_client.post(
        admin_url(CreditAllocation, "change", allocation.pk),
        {"allocated_credits": "4000", "used_credits": "0", "note": "raised by support", "_save": "Save"},
    )

    assert response.status_code == 302
    allocation.refresh_from_db()
    assert (allocation.allocated_credits, allocation.used_credits) == (Decimal("40"), Decimal("10"))
    assert allocation.note == "raised by support"


def test_adjust_action_writes_ledger_rows_through_the_service(admin_client, admin_user):
    account = CreditAccountFactory(user=UserFactory())
    url = reverse("admin:billing_creditaccount_changelist")
    selection = {"action": "adjust_credits", "_selected_action": [account.pk]}

    form_page = admin_client.post(url, selection)
    applied = admin_client.post(url, {**selection, "apply": "1", "amount": "12.5", "reason": "Support ticket 42"})

    assert form_page.status_code == 200
    assert b"Grant or adjust credits" in form_page.content
    assert applied.status_code == 302
    row = CreditTransaction.objects.get(user=account.user)
    assert (row.transaction_type, row.amount, row.metadata["actor"]) == ("adjustment", Decimal("12.5"), "admin")
    account.refresh_from_db()
    assert account.balance == Decimal("12.5")


def test_adjust_action_refuses_to_overdraw_and_zero(admin_client):
    account = CreditAccountFactory(user=UserFactory())
    url = reverse("admin:billing_creditaccount_changelist")
    selection = {"action": "adjust_credits", "_selected_action": [account.pk], "apply": "1", "reason": "x"}

    overdraw = admin_client.post(url, {**selection, "amount": "-1"}, follow=True)
    zero = admin_client.post(url, {**selection, "amount": "0"})

    assert "cannot cover" in overdraw.content.decode()
    assert zero.status_code == 200  # the form again, with its error
    assert b"must not be zero" in zero.content
    assert not CreditTransaction.objects.filter(user=account.user).exists()
