"""Read replicas on real servers: a streaming hot standby of the test primary (scripts/test_services.py).

Every check asks the servers, not a mock router: the alias ``replica_1`` is a
standby (``pg_is_in_recovery()``) on its own port, and each test records which
alias ran each statement. Routing data must be committed to reach the replica,
so these tests are transactional.
"""

import json
import os
import subprocess
import time
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.core.cache import cache as django_cache
from django.db import connections, transaction

from analytics.dashboard import dashboard_data
from billing.services import credits_adjust, credits_consume, credits_purchase
from billing.tests.factories import CreditAllocationFactory, CreditPoolFactory, PlanFactory, SubscriptionFactory
from ops_center import replicas
from ops_center.tests.api_support import SchemaCheckedClient
from orgs.models import Membership
from orgs.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

REPLICA = "replica_1"
NO_REPLICA = (
    "needs a streaming replica of the test server: scripts/test_services.py starts one when PostgreSQL's "
    "pg_basebackup is installed (`sudo apt-get install postgresql`), or set TEST_DATABASE_REPLICA_URL"
)
pytestmark = [
    pytest.mark.skipif(not os.environ.get("TEST_DATABASE_REPLICA_URL"), reason=NO_REPLICA),
    pytest.mark.postgresql_only("streaming replication"),
    pytest.mark.django_db(transaction=True, databases=["default", REPLICA]),
    pytest.mark.usefixtures("default_catalog", "routing"),
]
# Statements of the routing machinery itself, not of the reads under test.
BOOKKEEPING = ("pg_last_wal_replay_lsn", "pg_current_wal_insert_lsn", "pg_is_in_recovery")


def lsn(alias: str, expression: str) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SELECT ({expression}) - '0/0'::pg_lsn")
        value = cursor.fetchone()[0]
    return int(value) if value is not None else -1


def wait_for_replay(timeout: float = 15.0) -> None:
    """Until the replica has replayed everything the primary wrote so far."""
    target = lsn("default", "pg_current_wal_insert_lsn()")
    deadline = time.monotonic() + timeout
    while lsn(REPLICA, "pg_last_wal_replay_lsn()") < target:
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.02)
    time.sleep(replicas.STATE_TTL_SECONDS)  # let every cached replica state expire


def wait_for_receipt(timeout: float = 15.0) -> None:
    """Until the replica has received (not necessarily replayed) everything the primary wrote so far."""
    target = lsn("default", "pg_current_wal_insert_lsn()")
    deadline = time.monotonic() + timeout
    while lsn(REPLICA, "pg_last_wal_receive_lsn()") < target:
        assert time.monotonic() < deadline, "the replica did not receive the WAL"
        time.sleep(0.02)


def set_replay(paused: bool) -> None:
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")


@pytest.fixture
def routing(settings):
    """Routing on, with a lag limit generous enough for a slow machine (tests that need a small one set it)."""
    settings.DATABASE_REPLICAS = [REPLICA]
    settings.REPLICA_MAX_LAG_SECONDS = 60
    settings.REPLICA_BREAKER_COOLDOWN = 5
    replicas.reset()
    yield
    set_replay(paused=False)
    replicas.reset()


@contextmanager
def statements():
    """Records (alias, sql) of every statement this thread runs, routing bookkeeping left out."""
    ran: list[tuple[str, str]] = []

    def recorder(alias):
        def record(execute, sql, params, many, context):
            if not any(name in sql for name in BOOKKEEPING):
                ran.append((alias, sql))
            return execute(sql, params, many, context)

        return record

    with (
        connections["default"].execute_wrapper(recorder("default")),
        connections[REPLICA].execute_wrapper(recorder(REPLICA)),
    ):
        yield ran


def servers(ran: list[tuple[str, str]]) -> set[str]:
    return {alias for alias, _ in ran}


def funded_user(credits: str = "100"):
    user = UserFactory()
    credits_purchase(user=user, credits=Decimal(credits))
    return user


def usage(client, credits: str) -> None:
    body = {"service": "embedding", "units": 1, "credits": credits}
    assert client.post("/api/v1/credits/usage", body, format="json").status_code == 201


def test_the_replica_alias_is_a_standby_of_its_own_holding_the_test_database():
    wait_for_replay()
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), current_database(), inet_server_port()")
        primary = cursor.fetchone()
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), current_database(), inet_server_port()")
        replica = cursor.fetchone()

    assert primary[0] is False
    assert replica[0] is True
    assert primary[1] == replica[1] == connections["default"].settings_dict["NAME"]
    assert primary[2] != replica[2]


def test_history_summary_and_analytics_are_read_from_a_caught_up_replica():
    user = funded_user()
    client = SchemaCheckedClient().as_user(user)
    usage(client, "4")
    staff = SchemaCheckedClient().as_user(UserFactory(is_staff=True))
    SubscriptionFactory(plan=PlanFactory(code="pro"))
    wait_for_replay()

    with statements() as ran:
        history = client.get("/api/v1/credits/transactions?limit=5")
    assert history.status_code == 200
    assert [row["amount"] for row in history.json()["results"]] == ["-4.0000", "100.0000"]
    assert servers([(alias, sql) for alias, sql in ran if "credit_transactions" in sql]) == {REPLICA}

    for path in (
        "/api/v1/credits/usage/summary?days=7",
        "/api/v1/credits/transactions",  # the cached first page, computed on a miss
    ):
        with statements() as ran:
            assert client.get(path).status_code == 200
        assert "default" not in servers([(alias, sql) for alias, sql in ran if "credit" in sql or "usage" in sql])
        assert REPLICA in servers(ran), path

    for path in (
        "/api/v1/org-billing/subscriptions",
        "/api/v1/org-billing/analytics/platform",
        "/api/v1/org-billing/analytics/revenue-trends",
    ):
        with statements() as ran:
            response = staff.get(path)
        assert response.status_code == 200, path
        data_reads = [(alias, sql) for alias, sql in ran if "subscriptions" in sql or "daily" in sql]
        assert data_reads, path
        assert servers(data_reads) == {REPLICA}, path
    assert staff.get("/api/v1/org-billing/subscriptions").json()["results"][0]["plan"] == "pro"

    django_cache.clear()
    with statements() as ran:
        data = dashboard_data()
    assert data["figures"]
    assert servers(ran) == {REPLICA}


def test_members_usage_is_read_from_the_replica_once_it_has_the_orgs_writes():
    org = OrganizationFactory()
    pool = CreditPoolFactory(org=org, total_credits=Decimal("100"), allocated_credits=Decimal("10"))
    member = MembershipFactory(org=org, role=Membership.Role.MEMBER).user
    CreditAllocationFactory(user=member, pool=pool, allocated_credits=Decimal("10"))
    admin = SchemaCheckedClient().as_user(MembershipFactory(org=org, role=Membership.Role.ADMIN).user)
    credits_consume(user=member, service="embedding", units=1, credits=Decimal("3"), org_id=org.pk)
    wait_for_replay()

    with statements() as ran:
        body = admin.get(f"/api/v1/org-billing/organizations/{org.pk}/members/usage").json()

    assert {row["user_id"]: row["used"] for row in body["results"]}[member.pk] == "3.0000"
    assert servers([(alias, sql) for alias, sql in ran if "usage_daily" in sql]) == {REPLICA}


def test_balances_and_writes_stay_on_the_primary():
    user = funded_user()
    client = SchemaCheckedClient().as_user(user)
    wait_for_replay()

    with statements() as ran:
        assert client.get("/api/v1/credits/balance").json()["balance"] == "100.0000"
        usage(client, "5")
        assert client.post("/api/v1/credits/purchases", {"credits": "7"}, format="json").status_code == 201
        assert client.get("/api/v1/credits/balance").json()["balance"] == "102.0000"

    assert ran
    assert servers(ran) == {"default"}


def test_a_writers_next_read_comes_from_the_primary_while_replay_is_paused():
    # given two users with history, replicated
    writer, other = funded_user(), funded_user()
    writer_api, other_api = SchemaCheckedClient().as_user(writer), SchemaCheckedClient().as_user(other)
    wait_for_replay()
    set_replay(paused=True)

    # when the writer spends while the replica replays nothing
    usage(writer_api, "9")
    wait_for_receipt()

    # then the writer's own history comes from the primary and shows the spend...
    with statements() as ran:
        mine = writer_api.get("/api/v1/credits/transactions?limit=5").json()["results"]
    assert mine[0]["amount"] == "-9.0000"
    assert servers([(alias, sql) for alias, sql in ran if "credit_transactions" in sql]) == {"default"}
    with connections[REPLICA].cursor() as cursor:  # which the replica really has not replayed
        cursor.execute("SELECT count(*) FROM credit_transactions WHERE user_id = %s", [writer.pk])
        assert cursor.fetchone()[0] == 1
    # ...while anyone else still reads from the replica
    with statements() as ran:
        theirs = other_api.get("/api/v1/credits/transactions?limit=5").json()["results"]
    assert [row["amount"] for row in theirs] == ["100.0000"]
    assert servers([(alias, sql) for alias, sql in ran if "credit_transactions" in sql]) == {REPLICA}

    # and once the replica has replayed the spend, the writer reads from it again
    set_replay(paused=False)
    wait_for_replay()
    with statements() as ran:
        again = writer_api.get("/api/v1/credits/transactions?limit=5").json()["results"]
    assert again == mine
    assert servers([(alias, sql) for alias, sql in ran if "credit_transactions" in sql]) == {REPLICA}


def test_the_write_position_is_taken_once_per_commit_and_after_it():
    user = funded_user()
    wait_for_replay()
    staff = UserFactory(is_staff=True)

    with statements() as ran, connections["default"].execute_wrapper(positions := _PositionRecorder()):  # noqa: SIM117
        with transaction.atomic():  # the recorders must outlive the commit
            credits_adjust(actor=staff, user=user, amount=Decimal("1"), reason="one")
            credits_adjust(actor=staff, user=user, amount=Decimal("2"), reason="two")
            assert positions.count == 0  # nothing before the commit
    commit_lsn = lsn("default", "pg_current_wal_insert_lsn()")

    assert positions.count == 1
    stored = django_cache.get(replicas.TOKEN_KEY.format(f"user_{user.pk}"))
    assert 0 < stored <= commit_lsn
    assert servers(ran) == {"default"}


class _PositionRecorder:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        if "pg_current_wal_insert_lsn" in sql:
            self.count += 1
        return execute(sql, params, many, context)


def test_a_replica_lagging_beyond_the_limit_is_skipped(settings, client):
    reader = SchemaCheckedClient().as_user(funded_user())
    wait_for_replay()
    settings.REPLICA_MAX_LAG_SECONDS = 1
    set_replay(paused=True)
    funded_user()  # someone else's write that the replica receives and does not replay
    wait_for_receipt()
    time.sleep(1.3)

    with statements() as ran:
        assert reader.get("/api/v1/credits/transactions?limit=5").status_code == 200
    assert servers([(alias, sql) for alias, sql in ran if "credit_transactions" in sql]) == {"default"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    (server,) = ready.json()["checks"]["replicas"]["servers"]
    assert server["name"] == REPLICA
    assert server["status"] == "lagging"
    assert server["lag_seconds"] > 1

    set_replay(paused=False)
    wait_for_replay()
    with statements() as ran:
        assert reader.get("/api/v1/credits/transactions?limit=5").status_code == 200
    assert servers([(alias, sql) for alias, sql in ran if "credit_transactions" in sql]) == {REPLICA}


@pytest.fixture
def replica_pg_ctl():
    control = os.environ.get("TEST_DATABASE_REPLICA_PG_CTL")
    if not control:
        pytest.skip("needs TEST_DATABASE_REPLICA_PG_CTL: the replica started by scripts/test_services.py")
    command = json.loads(control)

    def pg_ctl(*args: str) -> int:
        return subprocess.run([*command, *args], stdout=subprocess.DEVNULL, check=False, timeout=60).returncode

    yield pg_ctl
    if pg_ctl("status") != 0:  # whatever happened, the next tests get their replica back
        assert pg_ctl("-w", "start") == 0


def test_a_stopped_replica_is_skipped_at_once_and_requests_answer_from_the_primary(settings, client, replica_pg_ctl):
    user = funded_user()
    api = SchemaCheckedClient().as_user(user)
    usage(api, "2")
    wait_for_replay()
    settings.REPLICA_BREAKER_COOLDOWN = 60

    assert replica_pg_ctl("-m", "fast", "-w", "stop") == 0
    try:
        started = time.monotonic()
        for path in ("/api/v1/credits/transactions?limit=5", "/api/v1/credits/usage/summary?days=7") * 10:
            with statements() as ran:
                response = api.get(path)
            assert response.status_code == 200, path
            assert servers(ran) == {"default"}
        elapsed = time.monotonic() - started
        assert response.json()["total_credits"] == "2.0000"
        # One failed attempt opened the breaker; the other 19 reads never reached for the replica.
        assert replicas.replica(REPLICA).breaker.attempts_while_failing == 1
        assert elapsed < 5

        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["replicas"]["servers"] == [
            {"name": REPLICA, "status": "down", "lag_seconds": None}
        ]
        assert ready.json()["checks"]["database"]["status"] == "ok"
    finally:
        assert replica_pg_ctl("-w", "start") == 0

    replicas.reset()  # as the cooldown ending would
    wait_for_replay()
    with statements() as ran:
        assert api.get("/api/v1/credits/transactions?limit=5").status_code == 200
    assert servers([(alias, sql) for alias, sql in ran if "credit_transactions" in sql]) == {REPLICA}


def test_readyz_and_metrics_report_each_replicas_state_and_lag(settings, client):
    wait_for_replay()
    settings.METRICS_TOKEN = "scrape-token"

    ready = client.get("/readyz")
    metrics = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token").content.decode()

    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"
    assert ready.json()["checks"]["replicas"]["status"] == "ok"
    (server,) = ready.json()["checks"]["replicas"]["servers"]
    assert server["name"] == REPLICA
    assert server["status"] == "ok"
    assert 0 <= server["lag_seconds"] < 60
    assert f'ops_center_replica_up{{replica="{REPLICA}"}} 1.0' in metrics
    assert f'ops_center_replica_lag_seconds{{replica="{REPLICA}"}}' in metrics


def test_without_replicas_configured_routing_costs_nothing(settings):
    settings.DATABASE_REPLICAS = []
    user = funded_user()

    with statements() as ran, connections["default"].execute_wrapper(positions := _PositionRecorder()):
        credits_consume(user=user, service="embedding", units=1, credits=Decimal("1"))
        SchemaCheckedClient().as_user(user).get("/api/v1/credits/transactions?limit=5")

    assert positions.count == 0
    assert servers(ran) == {"default"}
    assert django_cache.get(replicas.TOKEN_KEY.format(f"user_{user.pk}")) is None
