"""Schemathesis fuzzes every operation of /api/v1/schema/ against a real gunicorn.

The server is the production configuration (config/gunicorn.py, the
production settings) on the test PostgreSQL and Redis. Each role calls with its
own API key: a plain user, an org member, an org admin and a staff user, so the
fuzzer reaches past the permission checks. Checks: no 5xx, responses match the
documented schema, status code and content type. The seed is fixed and
generation deterministic, so a failure reproduces; the run fails on any
failure and prints the cases and the time it took.
"""

import collections
import json
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from billing.services import credits_purchase
from billing.tests.factories import CreditAllocationFactory, CreditPoolFactory, PlanFactory, SubscriptionFactory
from ops_center.tests.live_server import PROJECT_DIR, LiveGunicorn
from orgs.services import api_key_create
from orgs.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

SCHEMATHESIS = Path(sys.executable).with_name("st")
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
EXAMPLES_PER_OPERATION = 50
SEED = 20251212


def principals() -> dict[str, str]:
    """One raw API key per role; the org (id 1 or not) has a pool, a subscription and allocations."""
    org = OrganizationFactory()
    SubscriptionFactory(org=org, plan=PlanFactory(code="pro", name="Pro", price_minor=4900))
    pool = CreditPoolFactory(org=org, total_credits=Decimal("100000"), allocated_credits=Decimal("200"))
    users = {
        "user": UserFactory(),
        "member": MembershipFactory(org=org, role="member").user,
        "admin": MembershipFactory(org=org, role="admin").user,
        "staff": UserFactory(is_staff=True),
    }
    for role in ("member", "admin"):
        CreditAllocationFactory(pool=pool, user=users[role], allocated_credits=Decimal("100"))
    keys = {}
    for role, user in users.items():
        credits_purchase(user=user, credits=Decimal("100000"))
        _, keys[role] = api_key_create(user=user, name=f"fuzz {role}")
    return keys


def fuzz(server: LiveGunicorn, role: str, key: str, report: Path) -> tuple[subprocess.CompletedProcess, dict]:
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{server.url}/api/v1/schema/",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(SEED),
        "--generation-deterministic",  # which also keeps no example database
        "--phases",
        "examples,coverage,fuzzing",
        # One worker: with two, CPython 3.11's ast.parse (hypothesis describing a lambda) can race
        # across threads and abort the run with "AST constructor recursion depth mismatch".
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        "--no-color",
    ]
    result = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600)
    assert report.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    return result, summarize(report)


def summarize(report: Path) -> dict:
    """Cases per operation and failures, read from the run's NDJSON events."""
    cases: dict[str, int] = {}
    for line in report.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if finished and finished.get("recorder"):
            label = finished["recorder"]["label"]
            cases[label] = cases.get(label, 0) + len(finished["recorder"].get("cases", {}))
    return cases


@pytest.mark.postgresql_only("a live gunicorn on the test PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_failure_in_any_operation_for_any_role(default_catalog, tmp_path):
    keys = principals()
    server = LiveGunicorn(WEB_CONCURRENCY="2", THROTTLE_WRITES="1000000/min").start()
    # Django logs every 4xx to stderr: drain the pipe, or a full one blocks the workers.
    server_log = collections.deque(maxlen=200)
    threading.Thread(target=lambda: server_log.extend(server.process.stderr), daemon=True).start()
    started = time.monotonic()
    totals: dict[str, int] = {}
    failed = []
    try:
        for role, key in keys.items():
            result, cases = fuzz(server, role, key, tmp_path / f"{role}.ndjson")
            print(f"--- schemathesis as {role}: exit {result.returncode}\n{result.stdout[-4000:]}")
            for label, count in cases.items():
                totals[label] = totals.get(label, 0) + count
            if result.returncode != 0:
                log = b"".join(server_log).decode(errors="replace")[-5000:]
                failed.append(f"as {role}:\n{result.stdout[-20000:]}\n{result.stderr[-3000:]}\nserver:\n{log}")
    finally:
        server.stop()
    elapsed = time.monotonic() - started
    print(f"schemathesis: {sum(totals.values())} cases over {len(totals)} operations in {elapsed:.0f} s")
    for label, count in sorted(totals.items()):
        print(f"  {count:5d}  {label}")

    assert not failed, "\n\n".join(failed)
    assert len(totals) >= 11, totals
    assert min(totals.values()) >= EXAMPLES_PER_OPERATION, totals
