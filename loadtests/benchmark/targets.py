"""The benchmarked endpoints (seven reads, and the debit), and the demo keys (seed_demo's keys CSV) that call them."""

import re
from dataclasses import dataclass

from billing.demo.keys_csv import DemoKey

ORG_ID_PLACEHOLDER = "{id}"
ROLES = ("user", "org_admin", "org_member", "staff")


@dataclass(frozen=True)
class Endpoint:
    template: str  # "/api/v1/org-billing/organizations/{id}/subscription"
    role: str  # the keys-CSV role whose principals call it
    method: str = "GET"
    body: bytes | None = None  # a write's JSON body, sent with a fresh Idempotency-Key each time

    @property
    def label(self) -> str:
        """The name results are filed under; it survives a change of data set, so baselines compare."""
        return f"{self.method} {self.template}"

    @property
    def writes(self) -> bool:
        return self.method != "GET"

    @property
    def needs_org(self) -> bool:
        return ORG_ID_PLACEHOLDER in self.template


# The benchmarked endpoints: each persona's hot reads (an end user's balance, usage and history; an
# org admin's subscription and pool; staff analytics), each called by the persona that uses it.
BENCHMARKED_ENDPOINTS = (
    Endpoint("/api/v1/credits/balance", "user"),
    Endpoint("/api/v1/credits/usage/summary", "user"),
    Endpoint("/api/v1/credits/transactions", "user"),
    Endpoint("/api/v1/org-billing/organizations/{id}/subscription", "org_admin"),
    Endpoint("/api/v1/org-billing/organizations/{id}/credit-pool", "org_admin"),
    Endpoint("/api/v1/org-billing/analytics/platform", "staff"),
    Endpoint("/api/v1/org-billing/analytics/revenue-trends", "staff"),
)
# The metered debit, benchmarked only when named (``all`` is the reads): each request spends 0.0001
# credits of the seed catalog's "embedding" service, so a run changes balances but hardly drains them.
DEBIT_ENDPOINT = Endpoint(
    "/api/v1/credits/usage",
    "user",
    method="POST",
    body=b'{"service": "embedding", "units": 1, "credits": "0.0001"}',
)


@dataclass(frozen=True)
class Target:
    """An endpoint as the benchmark calls it: one (path, principal) per client slot, used round robin."""

    endpoint: Endpoint
    calls: tuple[tuple[str, DemoKey], ...]


def resolve_targets(selectors: list[str], keys: list[DemoKey], default_role: str) -> list[Target]:
    """Turn --endpoint values (``all``, a report path with or without a real id, any other path) into targets."""
    targets: list[Target] = []
    for selector in selectors:
        if selector == "all":
            targets.extend(_target(endpoint, keys, org_id=None) for endpoint in BENCHMARKED_ENDPOINTS)
            continue
        endpoint, org_id = _match_report_endpoint(selector)
        if endpoint is None:
            endpoint = Endpoint(selector, default_role)
        targets.append(_target(endpoint, keys, org_id=org_id))
    return targets


def _match_report_endpoint(path: str) -> tuple[Endpoint | None, int | None]:
    for endpoint in (*BENCHMARKED_ENDPOINTS, DEBIT_ENDPOINT):
        if path == endpoint.template:
            return endpoint, None
        pattern = re.escape(endpoint.template).replace(re.escape(ORG_ID_PLACEHOLDER), r"(\d+)")
        match = re.fullmatch(pattern, path)
        if match:
            return endpoint, int(match.group(1))
    return None, None


def _target(endpoint: Endpoint, keys: list[DemoKey], org_id: int | None) -> Target:
    callers = [key for key in keys if key.role == endpoint.role]
    if endpoint.needs_org:
        callers = [caller for caller in callers if caller.org_id is not None]
        if org_id is not None:
            # A given id is benchmarked as that org's own admins when the CSV has them.
            callers = [caller for caller in callers if caller.org_id == org_id] or callers
    if not callers:
        raise ValueError(f"the keys file has no '{endpoint.role}' principal to call {endpoint.template}")
    calls = tuple(
        (endpoint.template.replace(ORG_ID_PLACEHOLDER, str(caller.org_id if org_id is None else org_id)), caller)
        for caller in callers
    )
    return Target(endpoint=endpoint, calls=calls)
