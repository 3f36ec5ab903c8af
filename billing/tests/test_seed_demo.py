import csv
import datetime
from collections import defaultdict
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count, Sum
from django.utils import timezone

from billing.models import (
    LIVE_SUBSCRIPTION_STATUSES,
    CreditAccount,
    CreditAllocation,
    CreditPackage,
    CreditPool,
    CreditTransaction,
    Invoice,
    PricingRule,
    Subscription,
    UsageDaily,
)
from ops_center.api.keys import hash_api_key
from orgs.models import ApiKey, Membership, Organization, User

pytestmark = pytest.mark.django_db

SMALL = ["--users", "60", "--orgs", "5", "--transactions", "1500", "--seed", "7"]
ROLES = {"user", "org_admin", "org_member", "staff"}


@pytest.fixture(autouse=True)
def catalog():
    """The packages and pricing rules the demo buys and spends with (a flush may have emptied them)."""
    for code, credits, price_minor in [("credits-1k", 1000, 1000), ("credits-10k", 10000, 9000)]:
        CreditPackage.objects.update_or_create(
            code=code, defaults={"name": code, "credits": Decimal(credits), "price_minor": price_minor}
        )
    for service, rate in [("chat-completion", "2.0000"), ("embedding", "0.1000"), ("image-generation", "40.0000")]:
        PricingRule.objects.update_or_create(service=service, defaults={"credits_per_unit": Decimal(rate)})


def seed(*extra, keys_out=None):
    args = [*SMALL, *extra]
    if keys_out is not None:
        args += ["--keys-out", str(keys_out)]
    out = StringIO()
    call_command("seed_demo", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def keys_csv(tmp_path):
    path = tmp_path / "keys.csv"
    seed(keys_out=path)
    return path


def chains():
    """Ledger rows per (user, org) in ledger order: created_at, then id."""
    grouped = defaultdict(list)
    for row in CreditTransaction.objects.order_by("created_at", "id").values(
        "user_id", "org_id", "transaction_type", "amount", "credits_before", "credits_after", "metadata"
    ):
        grouped[row["user_id"], row["org_id"]].append(row)
    return grouped


def ledger_fingerprint():
    by_type = CreditTransaction.objects.values("transaction_type").annotate(rows=Count("id"), total=Sum("amount"))
    balances = CreditAccount.objects.values_list("user__username", "balance")
    return sorted((row["transaction_type"], row["rows"], row["total"]) for row in by_type), sorted(balances)


@pytest.mark.usefixtures("keys_csv")
def test_every_ledger_chain_starts_at_zero_and_links_up():
    # given a seeded database, when reading each (user, org) chain in order
    grouped = chains()

    # then each row starts where the previous one ended, from zero
    assert grouped
    for key, rows in grouped.items():
        expected_before = Decimal(0)
        for row in rows:
            assert row["credits_before"] == expected_before, key
            assert row["credits_after"] == row["credits_before"] + row["amount"] >= 0, key
            expected_before = row["credits_after"]
    assert {key[1] for key in grouped} - {None}, "no org allocation chains were seeded"


@pytest.mark.usefixtures("keys_csv")
def test_balances_are_the_end_of_each_personal_chain():
    last_after = {user_id: rows[-1]["credits_after"] for (user_id, org_id), rows in chains().items() if not org_id}

    accounts = dict(CreditAccount.objects.values_list("user_id", "balance"))

    assert set(accounts) == set(User.objects.values_list("id", flat=True))
    for user_id, balance in accounts.items():
        assert balance == last_after.get(user_id, Decimal(0)), user_id


@pytest.mark.usefixtures("keys_csv")
def test_pools_add_up_their_allocations_and_allocations_their_ledger():
    grouped = chains()
    for pool in CreditPool.objects.all():
        allocations = CreditAllocation.objects.filter(pool=pool)
        totals = allocations.aggregate(allocated=Sum("allocated_credits"), used=Sum("used_credits"))
        assert pool.allocated_credits == (totals["allocated"] or 0)
        assert pool.used_credits == (totals["used"] or 0)
        assert pool.total_credits >= pool.allocated_credits >= pool.used_credits
        for allocation in allocations:
            rows = grouped[allocation.user_id, pool.org_id]
            assert rows[0]["transaction_type"] == "allocation"
            assert rows[0]["amount"] == allocation.allocated_credits
            assert sum(-row["amount"] for row in rows[1:]) == allocation.used_credits
            assert rows[-1]["credits_after"] == allocation.allocated_credits - allocation.used_credits


@pytest.mark.usefixtures("keys_csv")
def test_every_org_has_one_subscription_and_at_most_one_live():
    assert Organization.objects.count() == 5
    for org in Organization.objects.all():
        subscriptions = Subscription.objects.filter(org=org)
        assert subscriptions.count() == 1
        assert subscriptions.filter(status__in=LIVE_SUBSCRIPTION_STATUSES).count() <= 1
        subscription, pool = subscriptions.get(), CreditPool.objects.get(org=org)
        expected_refresh = None if subscription.status == "canceled" else subscription.current_period_end
        assert pool.next_refresh_date == expected_refresh


@pytest.mark.usefixtures("keys_csv")
def test_invoices_span_the_year_and_back_every_purchase():
    year_ago = timezone.now() - datetime.timedelta(days=365)
    months = Invoice.objects.filter(created_at__gte=year_ago).dates("created_at", "month")
    assert len(months) >= 10

    purchases = CreditTransaction.objects.filter(transaction_type="purchase")
    assert purchases.count() == Invoice.objects.filter(source="credit_purchase").count() > 0
    for purchase in purchases:
        invoice = Invoice.objects.get(pk=purchase.metadata["invoice_id"])
        assert (invoice.user_id, invoice.credits, invoice.status) == (purchase.user_id, purchase.amount, "paid")
        assert invoice.paid_at == purchase.created_at
    assert not Invoice.objects.filter(source="subscription", subscription__isnull=True).exists()


@pytest.mark.usefixtures("keys_csv")
def test_ledger_size_and_usage_rollup_match_the_request():
    assert abs(CreditTransaction.objects.count() - 1500) <= 45

    usage = CreditTransaction.objects.filter(transaction_type="usage")
    rollup = UsageDaily.objects.aggregate(credits=Sum("credits"), events=Sum("events"))
    assert rollup["credits"] == -usage.aggregate(total=Sum("amount"))["total"]
    assert rollup["events"] == usage.count()
    services = set(PricingRule.objects.values_list("service", flat=True))
    assert {row.metadata["service"] for row in usage} <= services


@pytest.mark.usefixtures("keys_csv")
def test_most_users_are_plain_end_users_and_admin_can_log_in():
    members = Membership.objects.values("user_id").distinct().count()
    plain_share = 1 - members / User.objects.count()

    assert 0.6 <= plain_share <= 0.8
    assert User.objects.filter(is_staff=True).count() >= 2
    admin = User.objects.get(username="admin")
    assert admin.is_superuser
    assert admin.check_password("admin")
    assert Membership.objects.filter(role="owner").count() == Organization.objects.count()


def test_keys_csv_has_a_working_key_for_every_role(keys_csv):
    with keys_csv.open(newline="") as keys_file:
        reader = csv.reader(keys_file)
        header, rows = next(reader), list(reader)

    assert header == ["username", "role", "org_id", "api_key", "user_id"]
    assert {row[1] for row in rows} == ROLES
    for username, role, org_id, raw_key, user_id in rows:
        key = ApiKey.objects.select_related("user").get(key_hash=hash_api_key(raw_key))
        assert (key.user.username, str(key.user_id), key.revoked_at) == (username, user_id, None)
        membership = Membership.objects.filter(user=key.user).first()
        if role in ("user", "staff"):
            assert (membership, org_id) == (None, "")
            assert key.user.is_staff == (role == "staff")
        else:
            assert str(membership.org_id) == org_id
            assert (membership.role == "member") == (role == "org_member")


def test_demo_info_prints_a_curl_line_per_role(keys_csv):
    out = StringIO()

    call_command("demo_info", "--keys", str(keys_csv), stdout=out)

    text = out.getvalue()
    assert "http://127.0.0.1:8000/admin/  (username admin, password admin)" in text
    assert text.count('curl -H "Authorization: Bearer oc_') == len(ROLES)


def test_demo_info_explains_how_to_get_a_key_when_the_file_is_missing(tmp_path):
    out = StringIO()

    call_command("demo_info", "--keys", str(tmp_path / "missing.csv"), stdout=out)

    assert "create_api_key" in out.getvalue()


def test_the_same_seed_gives_the_same_ledger():
    seed()
    first = ledger_fingerprint()

    seed("--reset")

    assert ledger_fingerprint() == first
    assert User.objects.count() == 60


def test_another_seed_gives_another_ledger():
    seed()
    first = ledger_fingerprint()

    call_command("seed_demo", *SMALL[:-1], "8", "--reset", stdout=StringIO(), stderr=StringIO())

    assert ledger_fingerprint() != first


def test_if_empty_leaves_a_populated_database_alone():
    seed()
    before = ledger_fingerprint(), User.objects.count(), Organization.objects.count()

    out = seed("--if-empty", "--users", "90")

    assert "not loaded" in out
    assert (ledger_fingerprint(), User.objects.count(), Organization.objects.count()) == before


def test_refuses_to_seed_over_existing_data_without_reset():
    seed()

    with pytest.raises(CommandError, match="--reset"):
        seed()


def test_refuses_more_orgs_than_users_can_own():
    with pytest.raises(CommandError, match="too small"):
        call_command("seed_demo", "--users", "10", "--orgs", "20", stdout=StringIO(), stderr=StringIO())
