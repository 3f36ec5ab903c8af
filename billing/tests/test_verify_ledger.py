"""verify_ledger: a ledger written by the real services passes; one corrupted row of each kind is named."""

import datetime
from decimal import Decimal
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection

from billing.allocations import pool_allocate
from billing.cycles import pool_refresh
from billing.models import (
    CreditAccount,
    CreditAllocation,
    CreditFlowDaily,
    CreditPool,
    CreditTransaction,
    UsageDaily,
    UserActivity,
)
from billing.services import credits_consume, credits_purchase
from billing.tests.factories import CreditPoolFactory
from orgs.models import Membership
from orgs.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

NOV_1, NOV_2 = datetime.date(2026, 11, 1), datetime.date(2026, 11, 2)


def at(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(12), tzinfo=datetime.UTC)


@pytest.fixture
def ledger():
    """Two users' purchases and usage, one allocation used from an org pool, and two pool refreshes."""
    buyer, spender = UserFactory(), UserFactory()
    org = OrganizationFactory()
    CreditPoolFactory(org=org, total_credits=Decimal("500"))
    owner = MembershipFactory(org=org, role=Membership.Role.OWNER).user
    MembershipFactory(org=org, user=spender)
    for day in (NOV_1, NOV_2):
        with time_machine.travel(at(day), tick=False):
            for user in (buyer, spender):
                credits_purchase(user=user, credits=Decimal("100"))
                credits_consume(user=user, service="embedding", units=3, credits=Decimal("2.5"))
            pool_allocate(actor=owner, org_id=org.pk, user_id=spender.pk, credits=Decimal("50") * day.day)
            credits_consume(user=spender, service="embedding", units=1, credits=Decimal("7"), org_id=org.pk)
            start = at(day)
            pool_refresh(
                org=org, plan_code="team", period_start=start, period_end=start + datetime.timedelta(days=30),
                credits=Decimal("1000"),
            )  # fmt: skip
    return buyer, spender, org


def verify(*args: str) -> tuple[int, str]:
    """The command's exit status (a CommandError's is what manage.py exits with) and all it wrote."""
    out, err = StringIO(), StringIO()
    try:
        call_command("verify_ledger", *args, stdout=out, stderr=err, verbosity=0)
    except CommandError as exc:
        return exc.returncode, f"{out.getvalue()}{err.getvalue()}{exc}"
    return 0, out.getvalue() + err.getvalue()


def corrupt(model, sql: str, params: list) -> None:
    """One raw write to ``model``'s table (``{table}`` in ``sql``), as a real corruption would be."""
    with connection.cursor() as cursor:
        cursor.execute(sql.format(table=model._meta.db_table), params)
        assert cursor.rowcount == 1


def ledger_rows(**filters) -> list[CreditTransaction]:
    return list(CreditTransaction.objects.filter(**filters).order_by("id"))


def test_a_ledger_written_by_the_services_passes(ledger):
    status, output = verify()

    assert status == 0, output
    assert "audited 2 accounts, 14 ledger rows, 1 allocations, 1 pools" in output
    assert "rollups 2026-11-01 to 2026-11-02 (1 months)" in output
    assert "all consistent" in output


def test_a_balance_that_is_not_its_ledger_sum_is_named(ledger):
    buyer, _, _ = ledger
    corrupt(CreditAccount, "UPDATE {table} SET balance = %s WHERE user_id = %s", [Decimal("100"), buyer.pk])

    status, output = verify()

    assert status == 1
    assert f"user {buyer.pk}: balance 100.0000 but ledger sums to 195.0000" in output.splitlines()
    assert "the ledger audit found 1 difference" in output


def test_a_personal_row_that_breaks_the_chain_is_named(ledger):
    buyer, _, _ = ledger
    first, second, third, _ = ledger_rows(user=buyer, org__isnull=True)
    # Moved with its after, so the row itself still satisfies after = before + amount.
    corrupt(
        CreditTransaction,
        "UPDATE {table} SET credits_before = credits_before + 1, credits_after = credits_after + 1 WHERE id = %s",
        [second.pk],
    )

    status, output = verify()

    assert status == 1
    lines = output.splitlines()
    assert f"user {buyer.pk} row {second.pk}: credits_before 101.0000 does not follow {first.credits_after}" in lines
    # The row after it no longer follows either; the balance still equals the amounts' sum.
    assert f"user {buyer.pk} row {third.pk}: credits_before 97.5000 does not follow 98.5000" in lines
    assert "the ledger audit found 2 differences" in output


def test_an_allocation_row_that_breaks_its_chain_is_named(ledger):
    _, spender, org = ledger
    allocation_rows = ledger_rows(user=spender, org=org)
    first = allocation_rows[0]
    corrupt(
        CreditTransaction,
        "UPDATE {table} SET credits_before = credits_before + 1, credits_after = credits_after + 1 WHERE id = %s",
        [first.pk],
    )

    status, output = verify()

    assert status == 1
    lines = output.splitlines()
    assert f"user {spender.pk} org {org.pk} row {first.pk}: credits_before 1.0000 does not start at 0.0000" in lines
    assert (
        f"user {spender.pk} org {org.pk} row {allocation_rows[1].pk}: credits_before 50.0000 does not follow 51.0000"
        in lines
    )


def test_an_allocation_used_that_is_not_its_org_usage_is_named(ledger):
    _, spender, org = ledger
    corrupt(
        CreditAllocation,
        "UPDATE {table} SET used_credits = %s WHERE user_id = %s",
        [Decimal("15"), spender.pk],
    )

    status, output = verify()

    assert status == 1
    lines = output.splitlines()
    assert f"user {spender.pk} org {org.pk}: used 15.0000 but org usage sums to 14.0000" in lines
    # The pool still holds the true figure, so it no longer equals its allocations either.
    assert f"org {org.pk} pool: used 14.0000 but its allocations' used sum to 15.0000" in lines


def test_a_pool_total_that_is_not_its_allocations_is_named(ledger):
    _, _, org = ledger
    corrupt(CreditPool, "UPDATE {table} SET allocated_credits = %s WHERE org_id = %s", [Decimal("120"), org.pk])

    status, output = verify()

    assert status == 1
    assert f"org {org.pk} pool: allocated 120.0000 but its allocations sum to 100.0000" in output.splitlines()
    assert "the ledger audit found 1 difference" in output


def test_a_pool_refresh_that_breaks_the_pool_chain_is_named(ledger):
    _, _, org = ledger
    first, second = ledger_rows(org=org, transaction_type=CreditTransaction.Type.REFRESH)
    corrupt(
        CreditTransaction,
        "UPDATE {table} SET credits_before = credits_before - 1, credits_after = credits_after - 1 WHERE id = %s",
        [second.pk],
    )

    status, output = verify()

    assert status == 1
    expected = f"org {org.pk} row {second.pk}: pool credits_before 1499.0000 does not follow {first.credits_after}"
    assert expected in output.splitlines()


def test_a_rollup_row_that_is_not_its_recomputation_is_named(ledger):
    buyer, _, _ = ledger
    corrupt(
        UsageDaily,
        "UPDATE {table} SET credits = %s WHERE user_id = %s AND day = %s",
        [Decimal("3.5"), buyer.pk, NOV_2],
    )

    status, output = verify()

    assert status == 1
    expected = (
        f"usage_daily user_id {buyer.pk} org_id none day 2026-11-02 service embedding: "
        "credits 3.5000, units 3, events 1 but the ledger gives credits 2.5000, units 3, events 1"
    )
    assert expected in output.splitlines()


def test_missing_and_extra_rollup_rows_are_named(ledger):
    buyer, _, _ = ledger
    flows = CreditFlowDaily.objects.filter(day=NOV_1).order_by("shard")
    missing = flows.first()
    corrupt(CreditFlowDaily, "DELETE FROM {table} WHERE id = %s", [missing.pk])
    corrupt(UserActivity, "UPDATE {table} SET last_usage_on = %s WHERE user_id = %s", [NOV_1, buyer.pk])

    status, output = verify()

    assert status == 1
    lines = output.splitlines()
    assert any(line.startswith(f"credit_flow_daily day 2026-11-01 shard {missing.shard}: missing") for line in lines), (
        lines
    )
    expected = (
        f"user_activity user {buyer.pk}: last usage 2026-11-01 "
        "but the ledger's last from 2026-11-01 to 2026-11-02 is 2026-11-02"
    )
    assert expected in lines


def test_rollups_are_checked_only_over_the_days_asked_for(ledger):
    buyer, _, _ = ledger
    corrupt(
        UsageDaily,
        "UPDATE {table} SET credits = %s WHERE user_id = %s AND day = %s",
        [Decimal("3.5"), buyer.pk, NOV_2],
    )

    assert verify("--from", "2026-11-01", "--to", "2026-11-01")[0] == 0
    status, output = verify("--from", "2026-11-02", "--to", "2026-11-02")
    assert status == 1
    assert "usage_daily user_id" in output


def test_the_listing_stops_at_the_limit_and_counts_the_rest(ledger):
    buyer, spender, _ = ledger
    for user in (buyer, spender):
        corrupt(CreditAccount, "UPDATE {table} SET balance = 1 WHERE user_id = %s", [user.pk])

    status, output = verify("--limit", "1")

    assert status == 1
    assert f"user {buyer.pk}: balance 1.0000 but ledger sums to 195.0000" in output
    assert f"user {spender.pk}:" not in output
    assert "... and 1 more (--limit 1)" in output
    assert "the ledger audit found 2 differences" in output
