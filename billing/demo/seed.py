"""Writes a planned demo population to the database, one phase at a time."""

import datetime
import random
from collections import Counter
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from rich.progress import Progress

from billing.demo.catalog import PLANS, Catalog
from billing.demo.keys import API_KEY_COLUMNS, IssuedKey, api_key_rows, issue_demo_keys
from billing.demo.ledger import INVOICE_COLUMNS, LEDGER_COLUMNS, USAGE_DAILY_COLUMNS, LedgerGenerator
from billing.demo.load import indexes_and_foreign_keys_deferred, sync_id_sequences, table_writer
from billing.demo.population import DemoOrg, Population
from billing.models import (
    CreditAccount,
    CreditAllocation,
    CreditPool,
    CreditTransaction,
    Invoice,
    Plan,
    Subscription,
    UsageDaily,
)
from billing.money import ZERO_CREDITS
from billing.rollup_rebuild import ROLLUPS, ledger_date_range, months_between, rebuild
from orgs.models import ApiKey, Membership, Organization, User

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin"  # noqa: S105 - the documented demo login
USER_COLUMNS = (
    "id",
    "password",
    "is_superuser",
    "username",
    "first_name",
    "last_name",
    "email",
    "is_staff",
    "is_active",
    "date_joined",
    "tier",
)
# Users per ledger chunk: bounds the rows held in memory, whatever the data set size.
LEDGER_CHUNK_USERS = 2_000
# Written with ids 1..n, so their sequences must be moved on afterwards.
MODELS_WITH_EXPLICIT_IDS = (
    User,
    Organization,
    Membership,
    Subscription,
    CreditPool,
    CreditAllocation,
    CreditAccount,
    Invoice,
)


class DemoSeeder:
    def __init__(
        self,
        *,
        population: Population,
        catalog: Catalog,
        rng: random.Random,
        now: datetime.datetime,
        progress: Progress,
    ):
        self.population = population
        self.rng = rng
        self.now = now
        self.progress = progress
        admin = population.users[0]  # user 1, who signs the staff adjustments
        self.ledger = LedgerGenerator(rng=rng, now=now, catalog=catalog, admin=admin)
        self.counts: Counter[str] = Counter()
        self.issued_keys: list[IssuedKey] = []
        # Per user id, from the ledger phase: (allocated, used) of their org allocation.
        self.allocations: dict[int, tuple[Decimal, Decimal]] = {}
        self.balances: dict[int, Decimal] = {}

    def run(self, *, with_keys: bool) -> None:
        plan_ids = self.load_plans()
        self.load_users()
        self.load_orgs(plan_ids)
        with indexes_and_foreign_keys_deferred(CreditTransaction, UsageDaily, Invoice):
            self.load_ledger()
        self.load_balances_and_pools()
        self.load_rollups()
        if with_keys:
            self.load_api_keys()
        sync_id_sequences(MODELS_WITH_EXPLICIT_IDS)

    def load_rollups(self) -> None:
        """The daily usage rollup is written with the ledger; the others are computed from it."""
        date_range = ledger_date_range()
        if date_range is None:
            return
        months = list(months_between(*date_range))
        task = self._phase("rollups", len(months))
        rebuild(
            *date_range,
            tables=tuple(table for table in ROLLUPS if table != "usage_daily"),
            on_month=lambda _: self.progress.advance(task),
        )

    def _phase(self, description: str, total: int):
        return self.progress.add_task(description, total=total)

    def load_plans(self) -> dict[str, int]:
        plan_ids = {}
        for spec in PLANS:
            plan, _ = Plan.objects.update_or_create(
                code=spec.code,
                defaults={
                    "name": spec.name,
                    "price_minor": spec.price_minor,
                    "currency": "USD",
                    "interval": spec.interval,
                    "included_credits": spec.included_credits,
                    "is_active": True,
                },
            )
            plan_ids[spec.code] = plan.id
        self.counts["plans"] = len(plan_ids)
        return plan_ids

    def load_users(self) -> None:
        users = self.population.users
        task = self._phase("users", len(users))
        # Hashing is deliberately slow: hash once, and give everyone but admin an unusable password.
        admin_password, no_password = make_password(ADMIN_PASSWORD), make_password(None)
        with table_writer(User, USER_COLUMNS) as write:
            for user in users:
                password = admin_password if user.username == ADMIN_USERNAME else no_password
                email = f"{user.username}@demo.example.com"
                names = (user.username, user.first_name, user.last_name, email)
                write((user.id, password, user.is_superuser, *names, user.is_staff, True, user.date_joined, user.tier))
                self.progress.advance(task)
        self.counts["users"] = len(users)
        self.counts["staff users"] = sum(user.is_staff for user in users)

    def load_orgs(self, plan_ids: dict[str, int]) -> None:
        orgs = self.population.orgs
        members = [user for user in self.population.users if user.org_id is not None]
        task = self._phase("organizations", len(orgs))
        with table_writer(Organization, ("id", "name", "slug", "created_at")) as write:
            for org in orgs:
                write((org.id, org.name, org.slug, org.created_at))
                self.progress.advance(task)
        task = self._phase("subscriptions", len(orgs))
        columns: tuple[str, ...] = ("id", "org_id", "plan_id", "status", "current_period_start", "current_period_end")
        columns += ("cancel_at_period_end", "created_at", "updated_at")
        with table_writer(Subscription, columns) as write:
            for org in orgs:
                # One subscription per org, sharing the org's id.
                period = (org.period_start, org.period_end, org.cancel_at_period_end)
                write((org.id, org.id, plan_ids[org.plan.code], org.status, *period, org.created_at, self.now))
                self.counts[f"subscriptions {org.status}"] += 1
                self.progress.advance(task)
        task = self._phase("memberships", len(members))
        with table_writer(Membership, ("id", "user_id", "org_id", "role", "created_at")) as write:
            for membership_id, user in enumerate(members, start=1):
                write((membership_id, user.id, user.org_id, user.membership_role, user.joined_org_at))
                self.progress.advance(task)
        self.counts["organizations"] = len(orgs)
        self.counts["memberships"] = len(members)

    def load_ledger(self) -> None:
        users = self.population.users
        orgs: dict[int | None, DemoOrg] = {org.id: org for org in self.population.orgs}
        task = self._phase("ledger", sum(user.personal_rows + user.allocation_rows for user in users))
        for first in range(0, len(users), LEDGER_CHUNK_USERS):
            invoices, usage_daily = [], []
            with table_writer(CreditTransaction, LEDGER_COLUMNS) as write:
                for user in users[first : first + LEDGER_CHUNK_USERS]:
                    history = self.ledger.user_history(user, orgs.get(user.org_id))
                    for row in history.ledger:
                        write(row)
                    invoices += history.invoices
                    usage_daily += history.usage_daily()
                    self.balances[user.id] = history.balance
                    if history.allocation:
                        self.allocations[user.id] = history.allocation
                    self.counts["ledger rows"] += len(history.ledger)
                    self.progress.advance(task, len(history.ledger))
            self._write_invoices(invoices)
            with table_writer(UsageDaily, USAGE_DAILY_COLUMNS) as write:
                for row in usage_daily:
                    write(row)
            self.counts["usage rollup rows"] += len(usage_daily)
        self._write_invoices([row for org in orgs.values() for row in self.ledger.subscription_invoices(org)])

    def _write_invoices(self, rows: list[tuple]) -> None:
        with table_writer(Invoice, INVOICE_COLUMNS) as write:
            for row in rows:
                write(row)
        self.counts["invoices"] += len(rows)

    def load_balances_and_pools(self) -> None:
        users, orgs = self.population.users, self.population.orgs
        task = self._phase("balances and pools", len(users) + len(orgs))
        with table_writer(CreditAccount, ("id", "user_id", "balance", "updated_at")) as write:
            for user in users:
                write((user.id, user.id, self.balances.get(user.id, ZERO_CREDITS), self.now))
                self.progress.advance(task)
        pool_columns = ("id", "org_id", "total_credits", "allocated_credits", "used_credits", "next_refresh_date")
        with table_writer(CreditPool, (*pool_columns, "updated_at")) as write:
            for org in orgs:
                shares = [self.allocations[user_id] for user_id in org.member_ids if user_id in self.allocations]
                allocated = sum((share for share, _ in shares), ZERO_CREDITS)
                used = sum((spent for _, spent in shares), ZERO_CREDITS)
                next_refresh = None if org.status == "canceled" else org.period_end
                # One pool per org, sharing the org's id.
                write((org.id, org.id, self.ledger.pool_total(org, allocated), allocated, used, next_refresh, self.now))
                self.progress.advance(task)
        allocation_columns = ("id", "pool_id", "user_id", "allocated_credits", "used_credits", "note", "updated_at")
        with table_writer(CreditAllocation, allocation_columns) as write:
            by_user = {user.id: user for user in users}
            for allocation_id, (user_id, (allocated, used)) in enumerate(self.allocations.items(), start=1):
                write((allocation_id, by_user[user_id].org_id, user_id, allocated, used, "demo allocation", self.now))
        self.counts["credit allocations"] = len(self.allocations)

    def load_api_keys(self) -> None:
        self.issued_keys = issue_demo_keys(self.rng, self.population.users)
        task = self._phase("api keys", len(self.issued_keys))
        with table_writer(ApiKey, API_KEY_COLUMNS) as write:
            for row in api_key_rows(self.issued_keys, self.now):
                write(row)
                self.progress.advance(task)
        self.counts["api keys"] = len(self.issued_keys)
