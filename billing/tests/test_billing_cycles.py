"""The cron jobs: process_billing_cycles and refresh_credit_pools, alone, repeated and racing."""

import datetime
import itertools
import operator
import re
from decimal import Decimal
from io import StringIO
from typing import ClassVar

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Sum

from billing.cycles import due_pools, due_subscriptions, lock_batch, next_period, pool_refresh, with_live_subscription
from billing.errors import PaymentDeclined
from billing.models import CreditFlowDaily, CreditPool, CreditTransaction, Invoice, RevenueDaily, Subscription
from billing.payments import Charge
from billing.selectors import orgs as org_selectors
from billing.tests.factories import CreditPoolFactory, PlanFactory, SubscriptionFactory
from ops_center import cache
from ops_center.tests.threads import run_in_threads
from orgs.models import Membership
from orgs.tests.factories import MembershipFactory, OrganizationFactory

Status = Subscription.Status
CREDITS = Decimal("10000")
DECLINING = "billing.tests.test_billing_cycles.DecliningGateway"


def at(month: int, day: int, year: int = 2025) -> datetime.datetime:
    return datetime.datetime(year, month, day, 12, tzinfo=datetime.UTC)


JAN_1, FEB_1, FEB_2, MAR_1 = at(1, 1), at(2, 1), at(2, 2), at(3, 1)


class RecordingGateway:
    charges: ClassVar[list[dict]] = []

    def charge(self, **charge) -> Charge:
        self.charges.append(charge)
        return Charge(reference=f"test_{len(self.charges)}")


class DecliningGateway:
    def charge(self, **charge) -> Charge:
        raise PaymentDeclined()


@pytest.fixture(autouse=True)
def charges(settings) -> list[dict]:
    settings.PAYMENT_GATEWAY = "billing.tests.test_billing_cycles.RecordingGateway"
    RecordingGateway.charges.clear()
    return RecordingGateway.charges


@pytest.fixture
def plan():
    return PlanFactory(code="team", name="Team", price_minor=4900, included_credits=CREDITS)


def subscribe(plan, *, start=JAN_1, end=FEB_1, status=Status.ACTIVE, cancel=False, contact=True):
    """An org with an owner (unless ``contact`` is false), a 500-credit pool due at ``end`` and this subscription."""
    org = OrganizationFactory()
    if contact:
        MembershipFactory(org=org, role=Membership.Role.OWNER)
    CreditPoolFactory(org=org, total_credits=Decimal("500"), next_refresh_date=end)
    return SubscriptionFactory(
        org=org,
        plan=plan,
        status=status,
        current_period_start=start,
        current_period_end=end,
        cancel_at_period_end=cancel,
    )


def subscribe_with_pool_behind(plan, *, start=FEB_1, end=MAR_1, pool_due=FEB_1):
    """A subscription already renewed to [start, end) whose pool missed the refresh due at ``pool_due``."""
    subscription = subscribe(plan, start=start, end=end)
    CreditPool.objects.filter(org=subscription.org).update(next_refresh_date=pool_due)
    return subscription


def run(command: str, as_of: datetime.datetime = FEB_2, **options) -> str:
    out = StringIO()
    call_command(command, as_of=as_of.isoformat(), verbosity=0, stdout=out, stderr=StringIO(), **options)
    return out.getvalue().strip()


def attrs(obj, names: str) -> tuple:
    return operator.attrgetter(*names.split())(obj)


def total_of(org) -> Decimal:
    return CreditPool.objects.get(org=org).total_credits


def refresh_rows(org) -> list[CreditTransaction]:
    """The org's refresh rows, checked to chain on the pool total and end at it."""
    rows = list(CreditTransaction.objects.filter(org=org, transaction_type="refresh").order_by("id"))
    for previous, row in itertools.pairwise(rows):
        assert row.credits_before == previous.credits_after
    assert not rows or rows[-1].credits_after == total_of(org)
    return rows


@pytest.mark.parametrize(
    ("start", "end", "interval", "expected_end"),
    [
        (JAN_1, FEB_1, "month", MAR_1),
        (at(12, 31, 2024), at(1, 31), "month", at(2, 28)),
        (at(12, 31, 2023), at(1, 31, 2024), "month", at(2, 29, 2024)),
        (at(1, 31), at(2, 28), "month", at(3, 31)),  # the billing day survives a short month
        (at(1, 28), at(2, 28), "month", at(3, 28)),
        (at(1, 18), FEB_1, "month", MAR_1),  # after a two-week trial
        (at(2, 29, 2024), at(2, 28), "year", at(2, 28, 2026)),
        (at(3, 15, 2024), at(3, 15), "year", at(3, 15, 2026)),
    ],
)
def test_next_period_starts_at_the_old_end_on_the_same_billing_day(start, end, interval, expected_end):
    assert next_period(start, end, interval) == (end, expected_end)


@pytest.mark.django_db
class TestProcessBillingCycles:
    def test_renewal_invoices_charges_and_refreshes_the_pool(self, plan, charges):
        subscription = subscribe(plan)
        org = subscription.org

        output = run("process_billing_cycles", FEB_1 + datetime.timedelta(minutes=1))

        subscription.refresh_from_db()
        assert attrs(subscription, "status current_period_start current_period_end") == (Status.ACTIVE, FEB_1, MAR_1)
        invoice = Invoice.objects.get(subscription=subscription)
        assert attrs(invoice, "source org_id status amount_minor") == ("subscription", org.pk, "paid", 4900)
        assert attrs(invoice, "currency period_start period_end") == ("USD", FEB_1, MAR_1)
        assert invoice.paid_at is not None
        [charge] = charges
        expected_key = f"subscription-{subscription.pk}:{FEB_1.isoformat()}"
        assert (charge["amount_minor"], charge["idempotency_key"]) == (4900, expected_key)
        assert (charge["currency"], charge["description"]) == ("USD", "Team, 2025-02-01 to 2025-03-01")
        pool = CreditPool.objects.get(org=org)
        assert attrs(pool, "total_credits available_credits next_refresh_date") == (10500, 10500, MAR_1)
        [row] = refresh_rows(org)
        owner_id = Membership.objects.get(org=org, role="owner").user_id
        assert attrs(row, "user_id amount credits_before credits_after") == (owner_id, CREDITS, 500, 10500)
        assert row.idempotency_key == f"pool-refresh:{org.pk}:2025-02-01T12:00:00+00:00"
        assert row.metadata == {"period_start": FEB_1.isoformat(), "period_end": MAR_1.isoformat(), "plan": "team"}
        assert output == "renewed 1, canceled 0, trials converted 0, past_due 0, pools refreshed 1, skipped 0, failed 0"
        # the daily rollups moved in the same transactions
        assert RevenueDaily.objects.filter(source="subscription").aggregate(total=Sum("amount_minor")) == {
            "total": 4900
        }
        assert CreditFlowDaily.objects.aggregate(total=Sum("refreshed")) == {"total": CREDITS}

    def test_a_run_far_ahead_renews_each_missed_period_with_its_own_invoice(self, plan):
        subscription = subscribe(plan, start=at(12, 31, 2024), end=at(1, 31))

        output = run("process_billing_cycles", at(4, 15))

        invoices = Invoice.objects.filter(subscription=subscription, status="paid").order_by("period_start")
        assert list(invoices.values_list("period_start", "period_end")) == [
            (at(1, 31), at(2, 28)),
            (at(2, 28), at(3, 31)),
            (at(3, 31), at(4, 30)),
        ]
        subscription.refresh_from_db()
        assert subscription.current_period_end == at(4, 30)
        assert len(refresh_rows(subscription.org)) == 3
        assert total_of(subscription.org) == 500 + 3 * CREDITS
        assert output.startswith("renewed 3,")

    @pytest.mark.parametrize("status", [Status.ACTIVE, Status.TRIALING])
    def test_cancel_at_period_end_cancels_without_an_invoice(self, plan, charges, status):
        subscription = subscribe(plan, status=status, cancel=True)

        output = run("process_billing_cycles")

        subscription.refresh_from_db()
        assert (subscription.status, subscription.current_period_end) == (Status.CANCELED, FEB_1)
        assert (Invoice.objects.count(), charges, refresh_rows(subscription.org)) == (0, [], [])
        assert CreditPool.objects.get(org=subscription.org).next_refresh_date is None
        assert output.startswith("renewed 0, canceled 1,")

    def test_an_ended_trial_becomes_active_with_a_paid_period(self, plan):
        trial = subscribe(plan, start=at(1, 18), end=FEB_1, status=Status.TRIALING)

        output = run("process_billing_cycles")

        trial.refresh_from_db()
        assert attrs(trial, "status current_period_start current_period_end") == (Status.ACTIVE, FEB_1, MAR_1)
        assert Invoice.objects.get(subscription=trial).status == "paid"
        assert total_of(trial.org) == 10500
        assert "trials converted 1" in output

    @pytest.mark.parametrize("status", [Status.ACTIVE, Status.TRIALING])
    def test_a_declined_charge_leaves_the_invoice_open_and_the_subscription_past_due(self, plan, settings, status):
        settings.PAYMENT_GATEWAY = DECLINING
        subscription = subscribe(plan, status=status)

        output = run("process_billing_cycles")

        subscription.refresh_from_db()
        assert subscription.status == Status.PAST_DUE
        invoice = Invoice.objects.get(subscription=subscription)
        assert attrs(invoice, "status paid_at period_start") == ("open", None, FEB_1)
        assert (total_of(subscription.org), refresh_rows(subscription.org)) == (500, [])
        assert "past_due 1, pools refreshed 0" in output

    def test_a_free_plan_is_invoiced_without_a_charge(self, charges):
        subscription = subscribe(PlanFactory(code="gratis", price_minor=0, included_credits=Decimal(1000)))

        run("process_billing_cycles")

        assert Invoice.objects.get(subscription=subscription).status == "paid"
        assert (charges, total_of(subscription.org)) == ([], 1500)

    def test_subscriptions_not_due_or_not_billable_are_untouched(self, plan, charges):
        subscribe(plan, start=at(1, 15), end=at(2, 15))
        subscribe(plan, status=Status.PAST_DUE)
        subscribe(plan, status=Status.CANCELED)
        before = list(Subscription.objects.order_by("id").values_list("status", "current_period_end"))

        output = run("process_billing_cycles")

        assert list(Subscription.objects.order_by("id").values_list("status", "current_period_end")) == before
        assert (Invoice.objects.count(), CreditTransaction.objects.count(), charges) == (0, 0, [])
        assert output.startswith("renewed 0, canceled 0, trials converted 0, past_due 0,")

    def test_an_org_without_owner_is_renewed_and_its_refresh_skipped_until_it_has_one(self, plan):
        subscription = subscribe(plan, contact=False)
        stderr = StringIO()

        # a naive --as-of means UTC
        call_command("process_billing_cycles", as_of="2025-02-02T00:00", verbosity=0, stdout=StringIO(), stderr=stderr)

        assert Invoice.objects.get(subscription=subscription).status == "paid"
        assert total_of(subscription.org) == 500
        assert "has no owner or admin" in stderr.getvalue()
        # when admins join, the refresh job catches the pool up, booked under the earliest one
        first_admin = MembershipFactory(org=subscription.org, role=Membership.Role.ADMIN)
        MembershipFactory(org=subscription.org, role=Membership.Role.ADMIN)
        assert run("refresh_credit_pools").startswith("pools refreshed 1,")
        [row] = refresh_rows(subscription.org)
        assert (row.user_id, row.credits_after) == (first_admin.user_id, 10500)

    def test_running_twice_then_the_refresh_job_renews_and_refreshes_once(self, plan, charges):
        subscription = subscribe(plan)

        outputs = [run("process_billing_cycles"), run("process_billing_cycles"), run("refresh_credit_pools", at(3, 2))]

        assert [output.split(",")[0] for output in outputs] == ["renewed 1", "renewed 0", "pools refreshed 0"]
        assert (Invoice.objects.filter(subscription=subscription).count(), len(charges)) == (1, 1)
        assert (len(refresh_rows(subscription.org)), total_of(subscription.org)) == (1, 10500)

    @pytest.mark.parametrize("command", ["process_billing_cycles", "refresh_credit_pools"])
    @pytest.mark.parametrize("as_of", ["next tuesday", "2025-02-30T00:00:00"])
    def test_a_bad_as_of_is_refused(self, command, as_of):
        with pytest.raises(CommandError, match="not an ISO 8601 datetime"):
            call_command(command, as_of=as_of, verbosity=0)


@pytest.mark.django_db
class TestRefreshCreditPools:
    def test_a_pool_behind_its_paid_subscription_is_refreshed_once_per_period(self, plan):
        subscription = subscribe_with_pool_behind(plan)

        outputs = [run("refresh_credit_pools", at(2, 10)) for _ in range(2)]

        assert outputs == ["pools refreshed 1, skipped 0, failed 0", "pools refreshed 0, skipped 0, failed 0"]
        [row] = refresh_rows(subscription.org)
        assert row.metadata["period_end"] == MAR_1.isoformat()
        assert CreditPool.objects.get(org=subscription.org).next_refresh_date == MAR_1

    def test_catching_up_follows_the_subscription_billing_day(self, plan):
        subscription = subscribe_with_pool_behind(plan, start=at(3, 31), end=at(4, 30), pool_due=at(1, 31))

        run("refresh_credit_pools", at(4, 5))

        periods = [(row.metadata["period_start"], row.metadata["period_end"]) for row in refresh_rows(subscription.org)]
        assert periods == [
            (at(1, 31).isoformat(), at(2, 28).isoformat()),
            (at(2, 28).isoformat(), at(3, 31).isoformat()),
            (at(3, 31).isoformat(), at(4, 30).isoformat()),
        ]

    def test_a_period_not_yet_renewed_is_left_to_billing(self, plan, settings):
        subscription = subscribe(plan)  # period ended Feb 1, pool due Feb 1

        assert run("refresh_credit_pools") == "pools refreshed 0, skipped 0, failed 0"
        settings.PAYMENT_GATEWAY = DECLINING
        run("process_billing_cycles")
        run("refresh_credit_pools")

        assert (total_of(subscription.org), refresh_rows(subscription.org)) == (500, [])

    def test_pool_refresh_is_idempotent_per_period(self, plan):
        subscription = subscribe(plan)
        period = {"period_start": FEB_1, "period_end": MAR_1, "credits": CREDITS, "plan_code": "team"}

        assert pool_refresh(org=subscription.org, **period) is not None
        assert pool_refresh(org=subscription.org, **period) is None
        assert total_of(subscription.org) == 10500


@pytest.mark.django_db
def test_dry_runs_list_the_work_and_write_nothing(plan, charges):
    subscribe(plan)
    subscribe(plan, start=at(1, 18), end=FEB_1, status=Status.TRIALING)
    subscribe(plan, cancel=True)
    subscribe_with_pool_behind(plan)

    def snapshot():
        return (
            Invoice.objects.count(),
            CreditTransaction.objects.count(),
            list(Subscription.objects.order_by("id").values_list("status", "current_period_end")),
            list(CreditPool.objects.order_by("id").values_list("total_credits", "next_refresh_date")),
        )

    before = snapshot()
    billing = run("process_billing_cycles", at(3, 2), dry_run=True)
    pools = run("refresh_credit_pools", at(3, 2), dry_run=True)

    assert (snapshot(), charges) == (before, [])
    assert "renew for 2025-02-01 to 2025-03-01, invoice 49.00 USD, pool +10000.0000 credits" in billing
    assert "renew for 2025-03-01 to 2025-04-01" in billing
    assert "convert trial for 2025-02-01 to 2025-03-01" in billing
    assert "cancel at period end 2025-02-01" in billing
    assert "dry run: 6 actions" in billing
    assert "refresh +10000.0000 credits for 2025-02-01 to 2025-03-01" in pools
    assert "dry run: 1 actions" in pools


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("command", ["process_billing_cycles", "refresh_credit_pools"])
def test_two_runs_at_once_process_each_row_once(command, charges):
    # given: 30 orgs due; for the pool job, their renewals are paid but their pools are behind
    plan = PlanFactory(code="team", price_minor=4900, included_credits=CREDITS)
    due = subscribe if command == "process_billing_cycles" else subscribe_with_pool_behind
    subscriptions = [due(plan) for _ in range(30)]

    # when: two runs race in small batches, so that their batches interleave
    outputs = run_in_threads(2, lambda _: run(command, batch_size=4))

    # then: every org is renewed, charged and refreshed exactly once
    for subscription in subscriptions:
        assert (len(refresh_rows(subscription.org)), total_of(subscription.org)) == (1, 10500)
    if command == "process_billing_cycles":
        paid = Invoice.objects.filter(status="paid").values_list("subscription_id", "period_start")
        expected = sorted(f"subscription-{pk}:{start.isoformat()}" for pk, start in paid)
        assert sorted(charge["idempotency_key"] for charge in charges) == expected
        assert len(charges) == 30
        assert set(Subscription.objects.values_list("current_period_end", flat=True)) == {MAR_1}
    assert sum(int(re.match(r"(renewed|pools refreshed) (\d+)", output)[2]) for output in outputs) == 30


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("scenario", ["renewal", "cancel", "decline", "pool refresh"])
def test_the_orgs_cached_views_are_refreshed_after_the_job_commits(plan, settings, scenario):
    if scenario == "decline":
        settings.PAYMENT_GATEWAY = DECLINING
    if scenario == "pool refresh":
        subscription = subscribe_with_pool_behind(plan)
    else:
        subscription = subscribe(plan, cancel=scenario == "cancel")
    org = cache.org_part(subscription.org_id)
    cache.set_value("org_data", org, "credit_pool", value="stale")
    cache.set_value("subscription", org, "current", value="stale")

    run("refresh_credit_pools" if scenario == "pool refresh" else "process_billing_cycles")

    # In use (not an unread refill), so put back recomputed.
    pool = cache.get_value("org_data", org, "credit_pool")
    current = cache.get_value("subscription", org, "current")
    assert pool == org_selectors._pool_from_db(org_id=subscription.org_id)
    assert current == org_selectors._subscription_from_db(org_id=subscription.org_id)
    assert "stale" not in (pool, current)


@pytest.fixture
def many_rows():
    """Enough subscriptions and pools, spread like production (a few due at any moment, as when
    cron runs every minute), that the planner's choice means something."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO orgs_organization (name, slug, created_at)
            SELECT 'Org ' || g, 'cycles-org-' || g, now() FROM generate_series(1, 3000) g;
            INSERT INTO billing_plan (code, name, price_minor, currency, interval, included_credits, is_active)
            VALUES ('cycles-plan', 'Plan', 4900, 'USD', 'month', 1000, true);
            INSERT INTO subscriptions (org_id, subscription_plan, status, current_period_start,
                                       current_period_end, cancel_at_period_end, created_at, updated_at)
            SELECT o.id, p.id, s.status, now() - interval '40 days', now() - interval '10 days', false, now(), now()
            FROM orgs_organization o, billing_plan p, (VALUES ('canceled'), ('past_due')) s(status);
            INSERT INTO subscriptions (org_id, subscription_plan, status, current_period_start,
                                       current_period_end, cancel_at_period_end, created_at, updated_at)
            SELECT o.id, p.id, 'active', now() + (o.id % 30 - 31 || ' days')::interval,
                   now() + (o.id % 30 - 1 || ' days')::interval, false, now(), now()
            FROM orgs_organization o, billing_plan p;
            INSERT INTO credit_pools (org_id, total_credits, allocated_credits, used_credits,
                                      next_refresh_date, updated_at)
            SELECT id, 1000, 0, 0, now() + (id % 60 - 2 || ' days')::interval, now() FROM orgs_organization;
            ANALYZE;
            """
        )


@pytest.mark.postgresql_only("reads PostgreSQL's EXPLAIN plans")
@pytest.mark.django_db
def test_the_due_subscriptions_batch_uses_the_billing_index(many_rows):
    due = due_subscriptions(as_of=datetime.datetime.now(datetime.UTC)).select_related("plan", "org")
    assert "idx_subscriptions_billing" in lock_batch(due, limit=500).explain()


@pytest.mark.postgresql_only("reads PostgreSQL's EXPLAIN plans")
@pytest.mark.django_db
def test_the_due_pools_batch_uses_the_refresh_index(many_rows):
    due = with_live_subscription(due_pools(as_of=datetime.datetime.now(datetime.UTC)))
    assert "idx_credit_pools_refresh" in lock_batch(due, limit=500).explain()
