"""A stalled or restarted Redis under a real gunicorn with several workers.

Real faults on a Redis of the test's own: SIGSTOP (the port stays open and
takes commands, which wait unanswered) and a stop and restart on the same port
with its snapshot (the entries cached before the stop come back). During the
fault one worker takes a purchase and the test process revokes a key. One
second after Redis answers again, every worker, each reached on its own
keep-alive connection, must show the new balance and refuse the key.
"""

import http.client
import json
import time
from decimal import Decimal

import psutil
import pytest
from django.conf import settings
from django.test import override_settings

from billing.services import credits_purchase
from config.settings import redis_cache
from ops_center import cache
from ops_center.models import PendingEviction
from ops_center.tests.live_server import LiveGunicorn
from ops_center.tests.redis_server import DisposableRedis
from orgs.services import api_key_create, api_key_revoke
from orgs.tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_catalog")]

WORKERS = 3
# The server's and this process's cache must be one deployment: same Redis, same prefix.
PREFIX = "stall-test"
BALANCE = "/api/v1/credits/balance"
# The requirement: no stale answer from 1 s after Redis answers again. The replay interval
# (CACHE_EVICTION_REPLAY_INTERVAL, 0.5 s by default) is what makes that hold; no extra slack here.
AFTER_RECOVERY_SECONDS = 1.0


@pytest.fixture
def redis_server():
    server = DisposableRedis(persistent=True)
    server.start()
    yield server
    server.close()


@pytest.fixture
def live(redis_server):
    with override_settings(CACHES={"default": redis_cache(redis_server.url, key_prefix=PREFIX)}):
        cache.breaker.reset()
        server = LiveGunicorn(WEB_CONCURRENCY=str(WORKERS), REDIS_URL=redis_server.url, CACHE_KEY_PREFIX=PREFIX)
        server.start()
        try:
            yield server
        finally:
            server.stop()
            cache.breaker.reset()


@pytest.fixture
def account():
    """A funded user with two keys: one to read the balance with, one to revoke."""
    user = UserFactory()
    credits_purchase(user=user, credits=Decimal("50"))
    _, reader = api_key_create(user=user, name="reader")
    doomed, doomed_raw = api_key_create(user=user, name="doomed")
    return {"user": user, "reader": reader, "doomed": doomed, "doomed_raw": doomed_raw}


def call(conn: http.client.HTTPConnection, method: str, path: str, key: str, body: dict | None = None):
    headers = {"Authorization": f"Bearer {key}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    return response.status, response.getheader("X-Cache"), json.loads(payload) if payload else None


def connections_by_worker(server: LiveGunicorn) -> dict[int, http.client.HTTPConnection]:
    """One keep-alive connection accepted by each worker, found by the worker's own socket table."""
    workers = [child.pid for child in psutil.Process(server.process.pid).children()]
    assert len(workers) == WORKERS
    found: dict[int, http.client.HTTPConnection] = {}
    deadline = time.monotonic() + 15
    while len(found) < len(workers) and time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.connect()
        owner = _owner(conn.sock.getsockname()[1], server.port, workers)
        if owner is not None and owner not in found:
            found[owner] = conn
        else:
            conn.close()
    assert len(found) == len(workers), f"connections reached only workers {sorted(found)} of {workers}"
    return found


def _owner(client_port: int, server_port: int, workers: list[int]) -> int | None:
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        for pid in workers:
            for sock in psutil.Process(pid).net_connections(kind="tcp"):
                if sock.raddr and sock.raddr.port == client_port and sock.laddr.port == server_port:
                    return pid
        time.sleep(0.01)
    return None


def warm(server: LiveGunicorn, account: dict) -> None:
    """Every worker reads the balance and authenticates the doomed key from Redis."""
    for conn in connections_by_worker(server).values():
        answers = [call(conn, "GET", BALANCE, account["reader"]) for _ in range(10)]
        assert {(status, body["balance"]) for status, _, body in answers} == {(200, "50.0000")}
        assert answers[-1][1] == "HIT"
        assert call(conn, "GET", BALANCE, account["doomed_raw"])[0] == 200
        conn.close()


def assert_every_worker_is_current(server: LiveGunicorn, account: dict, *, writer: int) -> None:
    """60 balance reads spread over every worker, the writer last, then the revoked key on each."""
    conns = connections_by_worker(server)
    order = sorted(conns, key=lambda pid: pid == writer)  # the workers that did not write go first
    balances = []
    for index in range(60):
        status, _, body = call(conns[order[index % len(order)]], "GET", BALANCE, account["reader"])
        balances.append((status, body["balance"]))
    refused = {pid: call(conns[pid], "GET", BALANCE, account["doomed_raw"])[0] for pid in order}
    for conn in conns.values():
        conn.close()
    assert balances == [(200, "60.0000")] * 60
    assert refused == dict.fromkeys(order, 401)


def assert_caching_resumes(server: LiveGunicorn, account: dict) -> None:
    """Every worker caches again (once its breaker has cooled down) and the backlog empties."""
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        conns = connections_by_worker(server)
        answers = {
            pid: [call(conn, "GET", BALANCE, account["reader"]) for _ in range(3)][-1] for pid, conn in conns.items()
        }
        for conn in conns.values():
            conn.close()
        assert {(status, body["balance"]) for status, _, body in answers.values()} == {(200, "60.0000")}
        if {hit for _, hit, _ in answers.values()} == {"HIT"} and not PendingEviction.objects.exists():
            return
        time.sleep(0.5)
    pytest.fail(f"caching did not resume everywhere: {answers}, {PendingEviction.objects.count()} pending evictions")


def write_and_revoke(server: LiveGunicorn, account: dict) -> int:
    """A purchase through one worker and a revocation in this process, while Redis is out. Returns the writer."""
    writer, conn = next(iter(connections_by_worker(server).items()))
    status, _, body = call(conn, "POST", "/api/v1/credits/purchases", account["reader"], {"credits": "10"})
    assert (status, body["balance"]) == (201, "60.0000")
    api_key_revoke(api_key=account["doomed"])
    # Out of the cache's reach, the writer answers from PostgreSQL: current, and the key refused.
    assert call(conn, "GET", BALANCE, account["reader"])[2]["balance"] == "60.0000"
    assert call(conn, "GET", BALANCE, account["doomed_raw"])[0] == 401
    conn.close()
    return writer


def test_a_stall_never_leaves_a_worker_serving_a_replaced_balance_or_a_revoked_key(live, redis_server, account):
    warm(live, account)

    redis_server.pause()
    paused_at = time.monotonic()
    try:
        writer = write_and_revoke(live, account)
        assert PendingEviction.objects.exists()  # the evictions wait in PostgreSQL, not in one process
        time.sleep(max(0.0, paused_at + 5 - time.monotonic()))
    finally:
        redis_server.resume()
    time.sleep(AFTER_RECOVERY_SECONDS)

    assert_every_worker_is_current(live, account, writer=writer)
    assert_caching_resumes(live, account)


def test_a_restart_with_the_old_snapshot_never_serves_a_replaced_balance_or_a_revoked_key(live, redis_server, account):
    warm(live, account)

    redis_server.stop()  # SIGTERM: Redis saves its snapshot, old balance and principal included
    writer = write_and_revoke(live, account)
    time.sleep(2)
    redis_server.start()  # same port, the snapshot loaded back
    time.sleep(AFTER_RECOVERY_SECONDS)

    assert_every_worker_is_current(live, account, writer=writer)
    assert_caching_resumes(live, account)


def test_a_revoked_key_re_cached_by_a_racing_reader_is_refused_everywhere_within_a_second(live, account):
    """No fault: a reader that loaded the principal before the revocation committed writes it back after
    the revocation's eviction. The revocation's durable backlog row evicts it again."""
    warm(live, account)
    principal_key = f"apikey_{account['doomed'].key_hash}"
    principal = cache.get_value("user_tier", principal_key)
    assert principal is not None

    api_key_revoke(api_key=account["doomed"])
    cache.set_value("user_tier", principal_key, value=principal)  # the racing reader's late SET, for real
    time.sleep(AFTER_RECOVERY_SECONDS)

    conns = connections_by_worker(live)
    refused = {pid: call(conn, "GET", BALANCE, account["doomed_raw"])[0] for pid, conn in conns.items()}
    assert refused == dict.fromkeys(conns, 401)


def test_a_deactivated_user_s_keys_are_refused_everywhere_within_a_second(live, account):
    warm(live, account)

    user = account["user"]
    user.is_active = False
    user.save()  # as the admin's change form does
    time.sleep(AFTER_RECOVERY_SECONDS)

    conns = connections_by_worker(live)
    refused = {
        pid: (call(conn, "GET", BALANCE, account["reader"])[0], call(conn, "GET", BALANCE, account["doomed_raw"])[0])
        for pid, conn in conns.items()
    }
    assert refused == dict.fromkeys(conns, (401, 401))
    assert settings.CACHES["default"]["KEY_PREFIX"] == PREFIX
