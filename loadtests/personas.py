"""The three personas as Locust users: end users 70 %, org admins 20 %, platform staff 10 % (profile.json).

FastHttpUser (geventhttpclient) rather than HttpUser (requests): several
times less CPU per request, which matters when the generator shares two
cores with the server it measures.
"""

import logging
import random
import uuid
from decimal import Decimal

from locust import FastHttpUser, tag
from locust.exception import StopUser

from billing.demo.keys_csv import KeysFileError
from loadtests import profile
from loadtests.key_pool import LeasedKey
from loadtests.runtime import COUNTERS, pool_for
from loadtests.schedule import CONSTANT, Pacer, constant_users

logger = logging.getLogger(__name__)
API = "/api/v1"
# Business answers that are right, not errors: counted apart, never as failures.
EXPECTED_REFUSALS = {"pool_exhausted", "allocation_below_usage", "subscription_not_found", "pool_not_found"}
ALLOCATION_STEP = Decimal("5")


def weighted(persona: str, namespace: dict) -> dict:
    """Locust's {task: weight} from profile.json, so k6 runs the very same mix."""
    return {namespace[name]: weight for name, weight in profile.task_weights(persona).items()}


def error_code(response) -> str | None:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


class ApiUser(FastHttpUser):
    abstract = True
    persona = ""
    principal: LeasedKey | None

    def on_start(self):
        try:
            self.principal = pool_for(self.environment).lease(profile.persona_role(self.persona))
        except KeysFileError as exc:
            # Fails the run at the end (see runtime.finish_run) instead of a traceback per user.
            logger.error("%s", exc)
            COUNTERS.count("setup_errors")
            self.principal = None
            raise StopUser() from exc
        self.headers = self.principal.key.auth_header
        self.requests_sent = 0
        options = self.environment.parsed_options
        self.pacer = None
        if options.load_shape == CONSTANT:
            # Each of the N users owns 1/N of the target rate.
            self.pacer = Pacer(interval_s=(options.pacing_users or constant_users(options)) / options.rate)

    def on_stop(self):
        principal = getattr(self, "principal", None)
        if principal is not None:
            pool_for(self.environment).release(principal)
            self.principal = None

    def wait_time(self):
        sent, self.requests_sent = self.requests_sent, 0
        if self.pacer is not None:
            return self.pacer.wait_after(sent)
        return random.uniform(*profile.think_time())  # noqa: S311 - think time, not a secret

    def api(self, method: str, path: str, name: str, **kwargs):
        """A request with this user's key; use as a context manager (catch_response) to judge the answer."""
        self.requests_sent += 1
        headers = {**self.headers, **kwargs.pop("headers", {})}
        if method == "POST":
            headers["Idempotency-Key"] = uuid.uuid4().hex  # a fresh key: every POST is a new order
        return self.client.request(method, API + path, name=name, headers=headers, catch_response=True, **kwargs)

    def leased(self) -> LeasedKey:
        """The key on_start leased: tasks run only once it has one."""
        if self.principal is None:
            raise RuntimeError(f"{type(self).__name__} has no leased key")
        return self.principal

    def context(self):
        principal = getattr(self, "principal", None)
        return {"username": principal.key.username if principal else None}


class EndUser(ApiUser):
    persona = "end_user"
    weight = profile.persona_weights()[persona]

    def balance_check(self):
        with self.api("GET", "/credits/balance", "balance_check"):
            pass

    def usage_summary(self):
        with self.api("GET", "/credits/usage/summary?days=30", "usage_summary"):
            pass

    def browse_transactions(self):
        """The first page, then a page or two more by next_cursor, as someone scrolling does."""
        with self.api("GET", "/credits/transactions?limit=20", "transactions") as response:
            cursor = response.json().get("next_cursor") if response.ok else None
        for _ in range(random.randint(1, 2)):  # noqa: S311
            if not cursor:
                break
            with self.api("GET", "/credits/transactions", "transactions_next_page", params={"cursor": cursor}) as page:
                cursor = page.json().get("next_cursor") if page.ok else None

    def purchase(self):
        order = random.choice([{"package": "credits-1k"}, {"credits": str(random.randint(10, 500))}])  # noqa: S311
        with self.api("POST", "/credits/purchases", "purchase", json=order):
            pass

    @tag("workflow")
    def purchase_workflow(self):
        """Balance, purchase, balance, first page: the balance must rise by exactly the credits bought."""
        principal = self.leased()
        verifiable, leases_at_start = principal.exclusive, principal.leases
        bought = Decimal(random.randint(10, 500))  # noqa: S311
        with self.api("GET", "/credits/balance", "workflow_balance_before") as response:
            if not response.ok:
                return
            before = Decimal(response.json()["balance"])
        with self.api("POST", "/credits/purchases", "workflow_purchase", json={"credits": str(bought)}) as response:
            if response.status_code != 201:
                return
            purchase_id = response.json()["transaction"]["id"]
        # Someone else took this principal meanwhile: their purchases would move the balance too.
        verifiable = verifiable and principal.exclusive and principal.leases == leases_at_start
        with self.api("GET", "/credits/balance", "workflow_balance_after") as response:
            if not response.ok:
                return
            after = Decimal(response.json()["balance"])
            if not verifiable:
                COUNTERS.count("workflow_unverified_shared_principal")
            elif after - before != bought:
                COUNTERS.count("workflow_mismatches")
                response.failure(f"balance rose by {after - before}, expected {bought} (from {before} to {after})")
            else:
                COUNTERS.count("workflow_verified")
        with self.api("GET", "/credits/transactions?limit=20", "workflow_transactions") as response:
            newest = (response.json().get("results") or [None])[0] if response.ok else None
            if verifiable and newest and (newest["id"], Decimal(newest["credits_after"])) != (purchase_id, after):
                response.failure(f"newest ledger row {newest['id']} is not purchase {purchase_id} ending at {after}")

    # Locust annotates tasks as a list, but documents and accepts a {task: weight} dict.
    tasks = weighted(persona, locals())


class OrgAdmin(ApiUser):
    persona = "org_admin"
    weight = profile.persona_weights()[persona]

    def on_start(self):
        super().on_start()
        self.org = f"/org-billing/organizations/{self.leased().key.org_id}"
        self.members: list[dict] = []
        self.pool_available: Decimal | None = None

    def org_read(self, path: str, name: str):
        return self.api("GET", self.org + path, name)

    def org_subscription(self):
        with self.org_read("/subscription", "org_subscription") as response:
            self.accept_refusal(response)

    def org_credit_pool(self):
        with self.org_read("/credit-pool", "org_credit_pool") as response:
            if response.ok:
                self.pool_available = Decimal(response.json()["available"])
            else:
                self.accept_refusal(response)

    def org_members_usage(self):
        with self.org_read("/members/usage?days=30&limit=20", "org_members_usage") as response:
            if response.ok:
                self.members = response.json()["results"]

    def org_allocate(self):
        """Raise a member's allocation by a little while the pool has room, else lower one back."""
        if not self.members:
            self.org_members_usage()
            if not self.members:
                return
        member = random.choice(self.members)  # noqa: S311
        allocated, used = Decimal(member["allocated"]), Decimal(member["used"])
        raise_it = self.pool_available is None or self.pool_available >= ALLOCATION_STEP
        if not raise_it and allocated - ALLOCATION_STEP >= used:
            credits = allocated - ALLOCATION_STEP
        else:
            credits = allocated + ALLOCATION_STEP
        body = {"user_id": member["user_id"], "credits": str(credits), "note": "load test"}
        with self.api("POST", self.org + "/credit-pool/allocations", "org_allocate", json=body) as response:
            if response.ok:
                member["allocated"] = response.json()["allocation"]["allocated"]
                if self.pool_available is not None:
                    self.pool_available -= credits - allocated
            else:
                self.accept_refusal(response)

    def accept_refusal(self, response) -> None:
        """A 404/409 the API documents as a business answer (pool exhausted, no subscription) is a success."""
        code = error_code(response) if response.status_code in (404, 409) else None
        if code in EXPECTED_REFUSALS:
            COUNTERS.count(f"refused_{code}")
            if code == "pool_exhausted":
                self.pool_available = Decimal(0)
            response.success()

    # Locust annotates tasks as a list, but documents and accepts a {task: weight} dict.
    tasks = weighted(persona, locals())


class SystemAdmin(ApiUser):
    persona = "system_admin"
    weight = profile.persona_weights()[persona]

    def platform_analytics(self):
        with self.api("GET", "/org-billing/analytics/platform", "platform_analytics"):
            pass

    def revenue_trends(self):
        with self.api("GET", "/org-billing/analytics/revenue-trends?interval=month&periods=12", "revenue_trends"):
            pass

    def subscriptions(self):
        with self.api("GET", "/org-billing/subscriptions?limit=20", "subscriptions"):
            pass

    # Locust annotates tasks as a list, but documents and accepts a {task: weight} dict.
    tasks = weighted(persona, locals())
