"""The demo credit history: ledger rows, the invoices behind them and the daily usage rollup.

Rows are plain tuples in the column orders below, ready for COPY, shaped like
the rows billing.services writes. Every chain starts at zero and satisfies
``after = before + amount`` without going below zero, as the ledger's check
constraints demand.
"""

import datetime
import itertools
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from billing.demo.catalog import Catalog, Package
from billing.demo.population import DemoOrg, DemoUser
from billing.money import ZERO_CREDITS, to_credits

LEDGER_COLUMNS = (
    "user_id",
    "org_id",
    "transaction_type",
    "amount",
    "credits_before",
    "credits_after",
    "description",
    "metadata",
    "created_at",
)
INVOICE_COLUMNS = (
    "id",
    "source",
    "org_id",
    "user_id",
    "subscription_id",
    "amount_minor",
    "currency",
    "credits",
    "status",
    "period_start",
    "period_end",
    "paid_at",
    "created_at",
)
USAGE_DAILY_COLUMNS = ("user_id", "org_id", "day", "service", "credits", "units", "events")

PURCHASE_CHANCE = 0.01
REFUND_CHANCE = 0.01
ADJUSTMENT_CHANCE = 0.01
WELCOME_GRANT_CHANCE = 0.2
WELCOME_GRANT = to_credits(100)
ONE_MICROSECOND = datetime.timedelta(microseconds=1)


@dataclass
class UserHistory:
    """Everything one user's activity adds to the database."""

    ledger: list[tuple] = field(default_factory=list)
    invoices: list[tuple] = field(default_factory=list)
    balance: Decimal = ZERO_CREDITS
    # (allocated, used) of the user's allocation in their org, if they have one.
    allocation: tuple[Decimal, Decimal] | None = None

    def usage_daily(self) -> list[tuple]:
        """This user's rows of the daily usage rollup, summed from their usage rows."""
        # Per (user_id, org_id, day, service): the credits spent, the units used and the usage rows.
        credits: defaultdict[tuple, Decimal] = defaultdict(lambda: ZERO_CREDITS)
        units: Counter[tuple] = Counter()
        events: Counter[tuple] = Counter()
        for user_id, org_id, kind, amount, _, _, _, metadata, moment in self.ledger:
            if kind == "usage":
                key = user_id, org_id, moment.date(), metadata["service"]
                credits[key] -= amount
                units[key] += metadata["units"]
                events[key] += 1
        return [(*key, spent, units[key], events[key]) for key, spent in credits.items()]


def spread_times(rng: random.Random, count: int, start: datetime.datetime, end: datetime.datetime) -> list:
    """``count`` strictly increasing moments from ``start`` on, so a chain never ties on created_at."""
    span = max((end - start) // ONE_MICROSECOND, count)
    offsets = sorted(rng.randrange(span) for _ in range(count))
    for i in range(1, count):
        if offsets[i] <= offsets[i - 1]:
            offsets[i] = offsets[i - 1] + 1
    return [start + datetime.timedelta(microseconds=offset) for offset in offsets]


def next_multiple(amount: Decimal, step: int) -> Decimal:
    """The smallest multiple of ``step`` above ``amount``: round figures with a little to spare."""
    return to_credits((amount // step + 1) * step)


class LedgerGenerator:
    def __init__(self, *, rng: random.Random, now: datetime.datetime, catalog: Catalog, admin: DemoUser):
        self.rng = rng
        self.now = now
        self.catalog = catalog
        self.admin = admin
        # Invoice ids are assigned here so purchase rows can name their invoice.
        self.invoice_ids = itertools.count(1)

    def user_history(self, user: DemoUser, org: DemoOrg | None) -> UserHistory:
        history = UserHistory()
        if user.allocation_rows:
            if org is None:
                raise ValueError(f"demo user {user.id} has allocation rows but no org")
            self._add_allocation(history, user, org)
        self._add_personal(history, user)
        return history

    def _draw_usage(self) -> tuple[str, int, Decimal, Decimal]:
        service = self.rng.choices(self.catalog.services, cum_weights=self.catalog.service_cum_weights)[0]
        units = self.rng.randint(service.min_units, service.max_units)
        return service.name, units, service.credits_per_unit, to_credits(service.credits_per_unit * units)

    def _packages_for(self, rows: int) -> tuple[Package, ...]:
        """The busier the user, the larger the packages they buy."""
        packages = self.catalog.packages
        if rows <= 50:
            return packages[:1]
        if rows <= 1_000:
            return packages[:2]
        return packages[-2:]

    def _add_personal(self, history: UserHistory, user: DemoUser) -> None:
        """Buy, spend, and the odd refund or staff adjustment."""
        rng, packages = self.rng, self._packages_for(user.personal_rows)
        balance, last_usage = ZERO_CREDITS, None
        actor = {"actor_id": self.admin.id, "actor": self.admin.username}

        def add(kind: str, amount: Decimal, description: str, metadata: dict, moment) -> None:
            nonlocal balance
            history.ledger.append(
                (user.id, None, kind, amount, balance, balance + amount, description, metadata, moment)
            )
            balance += amount

        def purchase(moment) -> None:
            package, invoice_id = rng.choice(packages), next(self.invoice_ids)
            metadata = {"invoice_id": invoice_id, "package": package.code}
            metadata |= {"price_minor": package.price_minor, "currency": package.currency}
            add("purchase", package.credits, f"Purchase: {package.name}", metadata, moment)
            invoice = ("credit_purchase", None, user.id, None, package.price_minor, package.currency, package.credits)
            history.invoices.append((invoice_id, *invoice, "paid", None, None, moment, moment))

        for i, moment in enumerate(spread_times(rng, user.personal_rows, user.date_joined, self.now)):
            draw = rng.random()
            if i == 0 and draw < WELCOME_GRANT_CHANCE:
                add("adjustment", WELCOME_GRANT, "Grant: welcome bonus", {**actor, "reason": "welcome bonus"}, moment)
            elif i == 0 or draw < PURCHASE_CHANCE:
                purchase(moment)
            elif draw < PURCHASE_CHANCE + REFUND_CHANCE and last_usage:
                service, units, cost = last_usage
                metadata = {"service": service, "units": units, "reason": "failed request"}
                add("refund", cost, f"Refund: failed {service} request", metadata, moment)
                last_usage = None
            elif draw < PURCHASE_CHANCE + REFUND_CHANCE + ADJUSTMENT_CHANCE:
                correction = min(balance, to_credits(rng.randint(1, 20)))
                if correction and rng.random() < 0.5:
                    metadata = {**actor, "reason": "metering correction"}
                    add("adjustment", -correction, "Adjustment: metering correction", metadata, moment)
                else:
                    grant = to_credits(rng.randint(5, 50))
                    add("adjustment", grant, "Grant: goodwill", {**actor, "reason": "goodwill"}, moment)
            else:
                service, units, rate, cost = self._draw_usage()
                if cost > balance:
                    # Auto top-up: the request that would overdraw buys a package instead.
                    purchase(moment)
                    continue
                metadata = {"service": service, "units": units, "credits_per_unit": str(rate)}
                add("usage", -cost, f"Usage: {service}", metadata, moment)
                last_usage = service, units, cost
        history.balance = balance

    def _add_allocation(self, history: UserHistory, user: DemoUser, org: DemoOrg) -> None:
        """One allocation from the org pool, then the member's usage against it."""
        if user.joined_org_at is None:
            raise ValueError(f"demo user {user.id} has allocation rows but never joined an org")
        start = user.joined_org_at + datetime.timedelta(hours=1)
        moments = spread_times(self.rng, user.allocation_rows, start, org.usage_ends_at(self.now))
        usages = [self._draw_usage() for _ in moments[1:]]
        used = sum((cost for _, _, _, cost in usages), ZERO_CREDITS)
        # Admins hand out round amounts with some headroom over what gets spent.
        allocated = next_multiple(used * self.rng.randint(105, 180) / 100, 100)

        # The owner hands it out; member_ids lists the owner first.
        description, metadata = f"Allocation: {org.name}", {"actor_id": org.member_ids[0]}
        allocation = (user.id, org.id, "allocation", allocated, ZERO_CREDITS, allocated, description, metadata)
        history.ledger.append((*allocation, moments[0]))
        remaining = allocated
        for moment, (service, units, rate, cost) in zip(moments[1:], usages, strict=True):
            usage = {"service": service, "units": units, "credits_per_unit": str(rate)}
            row = (user.id, org.id, "usage", -cost, remaining, remaining - cost, f"Usage: {service}", usage, moment)
            history.ledger.append(row)
            remaining -= cost
        history.allocation = allocated, used

    def pool_total(self, org: DemoOrg, allocated: Decimal) -> Decimal:
        """The plan's credits, or more when members were handed more (top-ups, rollover)."""
        if allocated <= org.plan.included_credits:
            return org.plan.included_credits
        return next_multiple(allocated * self.rng.randint(110, 160) / 100, 1_000)

    def subscription_invoices(self, org: DemoOrg) -> list[tuple]:
        """One invoice per billed period; a past-due org has not paid its latest one."""
        invoices = []
        for number, (start, end) in enumerate(org.billed_periods, start=1):
            unpaid = org.status == "past_due" and number == len(org.billed_periods)
            paid_at = None if unpaid else start + datetime.timedelta(seconds=self.rng.randint(5, 3_600))
            # Subscription ids equal org ids: every org has exactly one subscription.
            invoice = ("subscription", org.id, None, org.id, org.plan.price_minor, "USD", ZERO_CREDITS)
            invoices.append(
                (next(self.invoice_ids), *invoice, "open" if unpaid else "paid", start, end, paid_at, start)
            )
        return invoices
