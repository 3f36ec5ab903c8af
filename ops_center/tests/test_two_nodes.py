"""Two app nodes behave as one service: two real gunicorn instances on two ports, one PostgreSQL, one Redis.

Each node is started as production starts one (the project's gunicorn config,
several workers, its own Prometheus directory) and shares only the database and
Redis with the other, as nodes behind a load balancer do. Nothing here talks to
a node's internals: every write and read is an HTTP request to one node or the
other. With a streaming replica of the test server (scripts/test_services.py)
both nodes also route reads to it, so read-your-writes is shown across nodes.
"""

import http.client
import http.cookiejar
import json
import os
import re
import time
import urllib.parse
import urllib.request
from decimal import Decimal

import psutil
import pytest
from django.db import connections
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from billing.models import CreditAccount, CreditTransaction
from billing.services import credits_purchase
from config.settings import redis_cache
from ops_center import cache
from ops_center.models import IdempotencyRecord
from ops_center.tests.live_server import LiveGunicorn
from ops_center.tests.threads import run_in_threads
from orgs.models import ApiKey
from orgs.services import api_key_create
from orgs.tests.factories import UserFactory

REPLICA = "replica_1"
HAS_REPLICA = bool(os.environ.get("TEST_DATABASE_REPLICA_URL"))
pytestmark = [
    pytest.mark.postgresql_only("two gunicorn nodes on the shared PostgreSQL"),
    pytest.mark.django_db(transaction=True, databases=["default", REPLICA] if HAS_REPLICA else ["default"]),
    pytest.mark.usefixtures("default_catalog", "shared_cache"),
]

WORKERS_PER_NODE = 2
# One deployment: both nodes and this process use the same Redis and the same key prefix.
PREFIX = "two-nodes"
METRICS_TOKEN = "two-nodes-metrics"
ADMIN_PASSWORD = "two-nodes-admin"
# The nodes run the production password hashers; the suite's fast MD5 one is not among them.
SERVER_HASHER = "django.contrib.auth.hashers.PBKDF2PasswordHasher"
BALANCE = "/api/v1/credits/balance"
TRANSACTIONS = "/api/v1/credits/transactions"
USAGE = "/api/v1/credits/usage"
PURCHASES = "/api/v1/credits/purchases"
REVOCATION_BOUND_SECONDS = 1.0


def node_env() -> dict[str, str]:
    env = {
        "WEB_CONCURRENCY": str(WORKERS_PER_NODE),
        "CACHE_KEY_PREFIX": PREFIX,
        "METRICS_TOKEN": METRICS_TOKEN,
        "THROTTLE_WRITES": "1000000/min",
        # Behind the pgBouncer pass's transaction pooling the nodes must be pool-safe too.
        "DATABASE_POOL_MODE": os.environ.get("DATABASE_POOL_MODE", "session"),
        # LiveGunicorn keeps stderr in a pipe it reads only on failure: a warning per refused request
        # (django.request logs each 401) would fill it and block the node.
        "LOG_LEVEL": "ERROR",
        # The admin login runs over plain HTTP on loopback.
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
    }
    if HAS_REPLICA:
        # The replica's copy of the test database (streaming replication made it), as a node would name it.
        parts = urllib.parse.urlsplit(os.environ["TEST_DATABASE_REPLICA_URL"])
        test_db = connections["default"].settings_dict["NAME"]
        env["DATABASE_REPLICA_URLS"] = urllib.parse.urlunsplit(parts._replace(path=f"/{test_db}"))
        env["REPLICA_MAX_LAG_SECONDS"] = "60"  # a paused replica must still be chosen when it has the write
    return env


@pytest.fixture(scope="module")
def nodes(django_db_setup):
    """Node A and node B: two gunicorn instances, two ports, the same database and Redis."""
    started: list[LiveGunicorn] = []
    try:
        for _ in range(2):
            started.append(LiveGunicorn(**node_env()).start())
        yield tuple(started)
    finally:
        for node in started:
            node.stop()


@pytest.fixture
def shared_cache():
    """This process caches under the nodes' prefix, so its own writes evict what they cached."""
    with override_settings(CACHES={"default": redis_cache(os.environ["TEST_REDIS_URL"], key_prefix=PREFIX)}):
        cache.breaker.reset()
        cache.stats.reset()
        yield
        cache.breaker.reset()


def call(node: LiveGunicorn, method: str, path: str, key: str, body: dict | None = None, **headers: str):
    """One request on a fresh connection: (status, headers, JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    sent = {"Authorization": f"Bearer {key}", **headers}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        payload = response.read()
        return response.status, dict(response.getheaders()), json.loads(payload) if payload else None
    finally:
        conn.close()


def balance_on(node: LiveGunicorn, key: str) -> tuple[int, str, str]:
    status, headers, body = call(node, "GET", BALANCE, key)
    return status, headers.get("X-Cache"), body["balance"] if status == 200 else None


def funded(credits: str = "100") -> tuple:
    user = UserFactory()
    credits_purchase(user=user, credits=Decimal(credits))
    _, raw_key = api_key_create(user=user, name="two-nodes")
    return user, raw_key


# A write on one node, the very next read on the other


def test_a_write_on_one_node_is_in_the_very_next_balance_read_on_the_other(nodes):
    # given: a funded user whose balance both nodes have cached
    node_a, node_b = nodes
    _, key = funded("100")
    expected = Decimal("100")
    for writer, reader in [(node_a, node_b), (node_b, node_a)] * 5:
        for _ in range(3):  # enough requests that the reader's cache holds the current balance
            assert balance_on(reader, key)[:1] == (200,)
        assert balance_on(reader, key) == (200, "HIT", f"{expected:.4f}")

        # when: the writer takes a purchase, then a metered usage
        status, _, body = call(writer, "POST", PURCHASES, key, {"credits": "10"})
        assert status == 201
        status, _, body = call(writer, "POST", USAGE, key, {"service": "embedding", "units": 1, "credits": "3"})
        assert status == 201
        expected += Decimal("7")
        assert body["balance"] == f"{expected:.4f}"

        # then: the reader's very next request, on the other node, answers the new balance
        status, _, balance = balance_on(reader, key)
        assert (status, balance) == (200, f"{expected:.4f}")


@pytest.mark.skipif(
    not HAS_REPLICA,
    reason="needs a streaming replica of the test server: scripts/test_services.py starts one when "
    "pg_basebackup is installed (`sudo apt-get install postgresql`)",
)
def test_a_write_on_one_node_is_in_the_other_nodes_history_read_from_a_paused_replica(nodes):
    # given: a user who bought credits on node A, whose history node B has read (and cached)
    node_a, node_b = nodes
    user = UserFactory()
    _, key = api_key_create(user=user, name="two-nodes")
    status, _, bought = call(node_a, "POST", PURCHASES, key, {"credits": "100"})
    assert status == 201
    status, _, page = call(node_b, "GET", TRANSACTIONS, key)
    assert status == 200
    assert [row["id"] for row in page["results"]] == [bought["transaction"]["id"]]
    # and the replica both nodes route history reads to stops replaying
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT pg_wal_replay_pause()")
    try:
        # when: node A records a usage (its WAL position goes to Redis, for every node)
        status, _, written = call(node_a, "POST", USAGE, key, {"service": "embedding", "units": 1, "credits": "4"})
        assert status == 201

        # then: node B's next history read has it: the paused replica has not replayed it, so the primary answers
        status, _, page = call(node_b, "GET", TRANSACTIONS, key)
        assert status == 200
        assert [row["id"] for row in page["results"]] == [written["transaction"]["id"], bought["transaction"]["id"]]
    finally:
        with connections[REPLICA].cursor() as cursor:
            cursor.execute("SELECT pg_wal_replay_resume()")
    # and the reads were really routed: node B counts them, by the server that answered and why
    assert routed_reads(node_b).get(("default", "read_your_writes"), 0) >= 1


# A key revoked on node A is refused by node B within a second


def admin_session(node: LiveGunicorn, username: str) -> urllib.request.OpenerDirector:
    """A staff member logged in to the Django admin of one node, as a browser would be."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    login = f"{node.url}/admin/login/?next=/admin/"
    form = {"username": username, "password": ADMIN_PASSWORD, "next": "/admin/"}
    with opener.open(login, timeout=30) as response:
        form["csrfmiddlewaretoken"] = csrf_token(response.read().decode())
    with opener.open(login, data=urllib.parse.urlencode(form).encode(), timeout=30) as response:
        assert response.url.endswith("/admin/"), "the admin login was refused"
    return opener


def csrf_token(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def revoke_in_admin(node: LiveGunicorn, opener: urllib.request.OpenerDirector, api_key: ApiKey) -> None:
    """The admin's "Revoke selected keys" action on the key list of one node."""
    changelist = f"{node.url}/admin/orgs/apikey/"
    with opener.open(changelist, timeout=30) as response:
        token = csrf_token(response.read().decode())
    form = {"csrfmiddlewaretoken": token, "action": "revoke_selected", "_selected_action": api_key.pk, "index": 0}
    with opener.open(changelist, data=urllib.parse.urlencode(form).encode(), timeout=30) as response:
        assert "Revoked 1 key(s)." in response.read().decode()


def test_a_key_revoked_on_node_a_is_refused_by_node_b_within_a_second(nodes):
    # given: a staff member logged in to node A's admin, and a key every worker of node B has authenticated
    node_a, node_b = nodes
    with override_settings(PASSWORD_HASHERS=[SERVER_HASHER]):
        UserFactory(username="two-nodes-staff", is_staff=True, is_superuser=True, password=ADMIN_PASSWORD)
    opener = admin_session(node_a, "two-nodes-staff")
    user, _ = funded("5")
    doomed, doomed_raw = api_key_create(user=user, name="doomed")
    for _ in range(4 * WORKERS_PER_NODE):
        assert balance_on(node_b, doomed_raw)[0] == 200

    # when: node A's admin revokes it
    revoke_in_admin(node_a, opener, doomed)
    revoked_at = time.monotonic()

    # then: node B refuses it within a second, and never accepts it again
    answers = []
    while time.monotonic() - revoked_at < REVOCATION_BOUND_SECONDS + 0.5:
        status = call(node_b, "GET", BALANCE, doomed_raw)[0]
        answers.append((time.monotonic() - revoked_at, status))
        time.sleep(0.01)
    accepted = [elapsed for elapsed, status in answers if status == 200]
    assert {status for _, status in answers} <= {200, 401}
    assert not accepted or max(accepted) < REVOCATION_BOUND_SECONDS, answers
    assert answers[-1][1] == 401
    assert len([1 for elapsed, _ in answers if elapsed >= REVOCATION_BOUND_SECONDS]) >= 5  # B was asked after 1 s
    doomed.refresh_from_db()
    assert doomed.revoked_at is not None


# Idempotent replays of one key sent to both nodes at once


def test_replays_of_one_idempotency_key_sent_to_both_nodes_at_once_charge_once(nodes):
    # given: a funded user, and eight threads holding the same metered usage with the same Idempotency-Key
    node_a, node_b = nodes
    user, key = funded("100")
    body = {"service": "embedding", "units": 2, "credits": "12.5"}

    # when: they send it at once, four to each node
    answers = run_in_threads(
        8,
        lambda index: call(nodes[index % 2], "POST", USAGE, key, body, **{"Idempotency-Key": "two-nodes-once"}),
    )

    # then: one charge; every answer is that charge's response, all but one marked as a replay
    assert {status for status, _, _ in answers} == {201}
    assert len({json.dumps(payload, sort_keys=True) for _, _, payload in answers}) == 1
    assert answers[0][2]["balance"] == "87.5000"
    replayed = sorted(headers.get("Idempotent-Replayed", "") for _, headers, _ in answers)
    assert replayed == [""] + ["true"] * 7
    assert CreditTransaction.objects.filter(user=user, transaction_type="usage").count() == 1
    assert CreditAccount.objects.get(user=user).balance == Decimal("87.5")
    assert IdempotencyRecord.objects.filter(user_id=user.pk, key="two-nodes-once").count() == 1
    # and both nodes answer the one balance
    assert balance_on(node_a, key)[2] == balance_on(node_b, key)[2] == "87.5000"


# Cache stats add up across both nodes


def scrape(node: LiveGunicorn) -> dict:
    """A node's /metrics as {(sample name, sorted labels): value}."""
    request = urllib.request.Request(f"{node.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def cache_events(node: LiveGunicorn, namespace: str) -> dict[str, int]:
    samples = scrape(node)
    return {
        event: int(samples.get(("ops_center_cache_events_total", (("event", event), ("namespace", namespace))), 0))
        for event in ("hits", "misses", "sets", "deletes")
    }


def routed_reads(node: LiveGunicorn) -> dict[tuple[str, str], int]:
    return {
        (dict(labels)["database"], dict(labels)["reason"]): int(value)
        for (name, labels), value in scrape(node).items()
        if name == "ops_center_routed_reads_total"
    }


def one_connection_per_worker(node: LiveGunicorn) -> list[http.client.HTTPConnection]:
    """A keep-alive connection accepted by each worker of the node, found by the workers' socket tables."""
    workers = [child.pid for child in psutil.Process(node.process.pid).children()]
    assert len(workers) == WORKERS_PER_NODE
    found: dict[int, http.client.HTTPConnection] = {}
    deadline = time.monotonic() + 15
    while len(found) < len(workers) and time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
        conn.connect()
        client_port = conn.sock.getsockname()[1]
        owner = next(
            (
                pid
                for pid in workers
                for sock in psutil.Process(pid).net_connections(kind="tcp")
                if sock.raddr and sock.raddr.port == client_port and sock.laddr.port == node.port
            ),
            None,
        )
        if owner is not None and owner not in found:
            found[owner] = conn
        else:
            conn.close()
    assert len(found) == len(workers), f"connections reached only workers {sorted(found)} of {workers}"
    return list(found.values())


def shared_balance_stats(nodes: tuple, staff_key: str, *, answered_by: LiveGunicorn) -> dict[str, int]:
    """/api/v1/cache/stats for credit_balance, once every worker of both nodes has sent its counts to Redis.

    A worker sends its counts about once a second, on a cache operation; the stats
    endpoint sends the answering worker's counts at once. So the endpoint is asked
    on a connection to each worker of each node first; then ``answered_by`` answers.
    """
    for node in nodes:
        for conn in one_connection_per_worker(node):
            conn.request("GET", "/api/v1/cache/stats", headers={"Authorization": f"Bearer {staff_key}"})
            status = conn.getresponse().status
            conn.close()
            assert status == 200
    status, _, body = call(answered_by, "GET", "/api/v1/cache/stats", staff_key)
    assert status == 200
    return body["namespaces"].get("credit_balance", dict.fromkeys(("hits", "misses", "sets", "deletes"), 0))


def test_cache_stats_add_up_across_both_nodes(nodes):
    # given: a staff key for the stats, a funded user, the shared stats and each node's own counters so far
    node_a, node_b = nodes
    staff = UserFactory(is_staff=True)
    _, staff_key = api_key_create(user=staff, name="stats")
    _, key = funded("30")
    shared_before = shared_balance_stats(nodes, staff_key, answered_by=node_a)
    before = {node.port: cache_events(node, "credit_balance") for node in nodes}

    # when: 13 balance reads on node A and 8 on node B
    reads = {node_a.port: 13, node_b.port: 8}
    for node in nodes:
        for _ in range(reads[node.port]):
            assert balance_on(node, key)[0] == 200

    # then: each node's own /metrics counts its own reads ...
    deltas = {}
    for node in nodes:
        after = cache_events(node, "credit_balance")
        deltas[node.port] = {event: after[event] - before[node.port][event] for event in after}
        assert deltas[node.port]["hits"] + deltas[node.port]["misses"] == reads[node.port], deltas
    # ... and the shared stats, answered by either node, grew by the sum of both
    for node in (node_b, node_a):
        shared = shared_balance_stats(nodes, staff_key, answered_by=node)
        for event in ("hits", "misses", "sets"):
            grown = shared[event] - shared_before[event]
            assert grown == sum(delta[event] for delta in deltas.values()), (event, shared, shared_before, deltas)
    assert sum(delta["hits"] + delta["misses"] for delta in deltas.values()) == 21
    assert sum(delta["hits"] for delta in deltas.values()) >= 21 - 2 * WORKERS_PER_NODE  # mostly from Redis
