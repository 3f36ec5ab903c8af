"""Who is in the demo: users, organizations, their subscriptions and memberships.

Nothing here touches the database. Ids are assigned from 1 so rows can point at
each other before they are written; the seeder only loads into empty tables.
"""

import datetime
import random
from dataclasses import dataclass, field
from enum import StrEnum

from django.utils.text import slugify

from billing.demo.catalog import (
    FIRST_NAMES,
    LAST_NAMES,
    ORG_ADJECTIVES,
    ORG_NOUNS,
    ORG_SUFFIXES,
    PAID_PLANS,
    PLAN_WEIGHTS,
    PLANS,
    PlanSpec,
)

DAY = datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)
HISTORY = datetime.timedelta(days=365)
TRIAL = datetime.timedelta(days=14)

# As in the load test's persona mix (70 % end users, 20 % org admins, 10 % staff), most users are plain
# end users: this share of them act in an org.
ORG_PRINCIPAL_SHARE = 0.3
# Share of the ledger that moves org allocations rather than personal balances.
ORG_LEDGER_SHARE = 0.2
ALLOCATED_MEMBER_SHARE = 0.85
# Pareto shape near 80/20, capped so one user never owns a large slice of the ledger.
ACTIVITY_SHAPE = 1.16
ACTIVITY_CAP = 5_000.0

PLAIN_USER_TIER_WEIGHTS = {"free": 60, "starter": 25, "pro": 12, "enterprise": 3}
STATUS_WEIGHTS = {"active": 65, "trialing": 10, "past_due": 10, "canceled": 15}


class ApiRole(StrEnum):
    """How a demo user reaches the API: the role column of the keys CSV, by which the load tests pick personas."""

    USER = "user"
    ORG_ADMIN = "org_admin"
    ORG_MEMBER = "org_member"
    STAFF = "staff"


USERNAME_PREFIXES = {ApiRole.STAFF: "staff", ApiRole.ORG_MEMBER: "member", ApiRole.USER: "user"}


@dataclass(slots=True)
class DemoUser:
    id: int
    username: str
    api_role: ApiRole
    tier: str
    date_joined: datetime.datetime
    first_name: str = ""
    last_name: str = ""
    is_superuser: bool = False
    org_id: int | None = None
    membership_role: str | None = None
    joined_org_at: datetime.datetime | None = None
    # Rows of the personal ledger, and of the org allocation (0: no allocation).
    personal_rows: int = 0
    allocation_rows: int = 0

    @property
    def ledger_rows(self) -> int:
        return self.personal_rows + self.allocation_rows

    @property
    def is_staff(self) -> bool:
        return self.api_role is ApiRole.STAFF


@dataclass(slots=True)
class DemoOrg:
    id: int
    name: str
    slug: str
    created_at: datetime.datetime
    plan: PlanSpec
    status: str
    period_start: datetime.datetime
    period_end: datetime.datetime
    cancel_at_period_end: bool
    member_ids: list[int] = field(default_factory=list)
    # Periods invoiced so far, oldest first; a past-due org's last one is unpaid.
    billed_periods: list[tuple[datetime.datetime, datetime.datetime]] = field(default_factory=list)

    def usage_ends_at(self, now: datetime.datetime) -> datetime.datetime:
        """Members stop spending when a canceled subscription runs out."""
        return min(now, self.period_end) if self.status == "canceled" else now


@dataclass
class Population:
    users: list[DemoUser]
    orgs: list[DemoOrg]


def add_months(moment: datetime.datetime, months: int) -> datetime.datetime:
    """Same day of month ``months`` later, clamped to the month's end (Jan 31 -> Feb 28)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    next_month_first = datetime.date(year + month // 12, month % 12 + 1, 1)
    last_day = (next_month_first - datetime.timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def staff_count_for(users: int) -> int:
    """A few platform staff, besides the ``admin`` superuser."""
    return max(2, min(25, users // 2_000))


def plan_population(*, rng: random.Random, users: int, orgs: int, transactions: int, now) -> Population:
    staff = staff_count_for(users)
    org_principals = max(orgs, round(users * ORG_PRINCIPAL_SHARE)) if orgs else 0
    plain = users - 1 - staff - org_principals
    if plain < 0:
        raise ValueError(f"--users {users} is too small for --orgs {orgs}: need at least {users - plain}")

    demo_users = _draw_users(rng, now, staff=staff, org_principals=org_principals, plain=plain)
    members = [user for user in demo_users if user.api_role is ApiRole.ORG_MEMBER]
    demo_orgs = _draw_orgs(rng, now, orgs, members)
    _assign_ledger_rows(rng, demo_users, {org.id: org for org in demo_orgs}, transactions, now)
    return Population(users=demo_users, orgs=demo_orgs)


def _draw_users(rng: random.Random, now, *, staff: int, org_principals: int, plain: int) -> list[DemoUser]:
    # Ids follow sign-up order, as a real sequence would; roles are scattered across it.
    joined = sorted(now - HISTORY + rng.random() * (HISTORY - DAY) for _ in range(1 + staff + org_principals + plain))
    # Org principals start out as members; _draw_orgs settles their roles and names.
    roles = [ApiRole.STAFF] * staff + [ApiRole.ORG_MEMBER] * org_principals + [ApiRole.USER] * plain
    rng.shuffle(roles)
    admin = DemoUser(1, "admin", ApiRole.STAFF, "enterprise", joined[0], "Demo", "Admin", is_superuser=True)
    demo_users = [admin]
    numbers = dict.fromkeys(ApiRole, 0)
    for user_id, (role, date_joined) in enumerate(zip(roles, joined[1:], strict=True), start=2):
        numbers[role] += 1
        tier = _weighted(rng, PLAIN_USER_TIER_WEIGHTS) if role is ApiRole.USER else "enterprise"
        demo_users.append(
            DemoUser(
                id=user_id,
                username=f"{USERNAME_PREFIXES[role]}{numbers[role]}",
                api_role=role,
                tier=tier,
                date_joined=date_joined,
                first_name=rng.choice(FIRST_NAMES),
                last_name=rng.choice(LAST_NAMES),
            )
        )
    return demo_users


def _draw_orgs(rng: random.Random, now, count: int, members: list[DemoUser]) -> list[DemoOrg]:
    if not count:
        return []
    rng.shuffle(members)
    extra_sizes = split_rows(rng, len(members) - count, [skewed_weight(rng) for _ in range(count)])
    demo_orgs, taken, numbers = [], 0, {"owner": 0, "orgadmin": 0, "member": 0}
    for org_id, extra in enumerate(extra_sizes, start=1):
        team = sorted(members[taken : taken + 1 + extra], key=lambda user: user.id)
        taken += 1 + extra
        owner = team[0]
        org = _subscribe(rng, now, org_id, created_at=min(owner.date_joined + rng.random() * 3 * DAY, now - HOUR))
        admins = 0 if len(team) < 3 else 1 + len(team) // 20
        for position, user in enumerate(team):
            role = "owner" if position == 0 else "admin" if position <= admins else "member"
            prefix = "orgadmin" if role == "admin" else role
            numbers[prefix] += 1
            user.username = f"{prefix}{numbers[prefix]}"
            user.api_role = ApiRole.ORG_MEMBER if role == "member" else ApiRole.ORG_ADMIN
            user.tier, user.org_id, user.membership_role = org.plan.tier, org.id, role
            later = max(org.created_at, user.date_joined) + rng.random() * 7 * DAY
            user.joined_org_at = org.created_at if role == "owner" else min(later, now - HOUR)
            org.member_ids.append(user.id)
        demo_orgs.append(org)
    return demo_orgs


def _subscribe(rng: random.Random, now, org_id: int, *, created_at) -> DemoOrg:
    plan = PLANS[_weighted_index(rng, PLAN_WEIGHTS)]
    status = _weighted(rng, STATUS_WEIGHTS)
    unpaid = ("trialing", "past_due")
    if org_id <= len(STATUS_WEIGHTS):
        # The first orgs take one status each, so even a small demo shows every status.
        status = list(STATUS_WEIGHTS)[org_id - 1]
        plan = PAID_PLANS[0] if plan.price_minor == 0 and status in unpaid else plan
    elif plan.price_minor == 0 and status in unpaid:
        # Nothing to trial or to fail to pay on the free plan.
        status = "active"
    name = f"{rng.choice(ORG_ADJECTIVES)} {rng.choice(ORG_NOUNS)} {rng.choice(ORG_SUFFIXES)}"
    org = DemoOrg(org_id, name, f"{slugify(name)}-{org_id}", created_at, plan, status, now, now, False)
    if status == "trialing":
        org.period_start = max(created_at, now - rng.randint(1, 13) * DAY)
        org.period_end = org.period_start + TRIAL
        return org

    # Billing periods are anchored on the day the org signed up.
    months = 12 if plan.interval == "year" else 1
    elapsed = 0
    while add_months(created_at, (elapsed + 1) * months) <= now:
        elapsed += 1
    last = rng.randint(0, elapsed) if status == "canceled" else elapsed
    periods = [(add_months(created_at, i * months), add_months(created_at, (i + 1) * months)) for i in range(last + 1)]
    org.period_start, org.period_end = periods[-1]
    org.cancel_at_period_end = status == "active" and rng.random() < 0.05
    if plan.price_minor:
        org.billed_periods = periods
    return org


def _assign_ledger_rows(rng: random.Random, users: list[DemoUser], orgs: dict[int, DemoOrg], total: int, now) -> None:
    allocated = []
    for user in users:
        # joined_org_at is set with org_id, so rng is drawn from exactly when the user has an org, as before.
        if user.org_id is None or user.joined_org_at is None or rng.random() >= ALLOCATED_MEMBER_SHARE:
            continue
        if orgs[user.org_id].usage_ends_at(now) - user.joined_org_at >= 2 * HOUR:
            allocated.append(user)
    org_budget = round(total * ORG_LEDGER_SHARE) if allocated else 0
    # Every allocation opens with its own allocation row, so a tiny budget allocates to fewer members.
    allocated = allocated[:org_budget]
    usage_rows = split_rows(rng, org_budget - len(allocated), [skewed_weight(rng) for _ in allocated])
    for user, rows in zip(allocated, usage_rows, strict=True):
        user.allocation_rows = 1 + rows
    personal = split_rows(rng, max(0, total - org_budget), [skewed_weight(rng) for _ in users])
    for user, rows in zip(users, personal, strict=True):
        user.personal_rows = rows


def skewed_weight(rng: random.Random) -> float:
    """Activity weight: many light users, a few heavy ones."""
    return min(rng.paretovariate(ACTIVITY_SHAPE), ACTIVITY_CAP)


def split_rows(rng: random.Random, total: int, weights: list[float]) -> list[int]:
    """Share ``total`` rows in proportion to ``weights``; the shares add up to ``total`` exactly."""
    if not weights:
        return []
    scale = total / sum(weights)
    exact = [weight * scale for weight in weights]
    shares = [int(value) for value in exact]
    # Largest remainders first; ties resolved by the draw, so the split is deterministic.
    order = sorted(range(len(exact)), key=lambda i: (shares[i] - exact[i], rng.random()))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _weighted_index(rng: random.Random, weights: tuple[int, ...]) -> int:
    return rng.choices(range(len(weights)), weights=weights)[0]
