"""The PostgreSQL backend's health check (ops_center/postgresql/base.py), with real faults on a real server."""

import time
import urllib.request

import pytest
from django.db import connection

from ops_center.tests.live_server import LiveGunicorn

pytestmark = [
    pytest.mark.postgresql_only("the project's PostgreSQL backend"),
    pytest.mark.django_db(transaction=True),
]


def last_statement_of(backend_pid: int) -> str:
    """What a backend last ran, as the server reports it to another connection."""
    other = connection.copy()
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [backend_pid])
            return cursor.fetchone()[0]
    finally:
        other.close()


OTHER_SESSIONS = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


def terminate_backends_except_mine() -> int:
    """The server ends every other session on the test database: what a restart or failover does to them.
    Returns once those backends have exited, their goodbyes sent."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(pg_terminate_backend(pid)) {OTHER_SESSIONS}")
        ended = cursor.fetchone()[0]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cursor.execute(f"SELECT count(*) {OTHER_SESSIONS}")
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.01)
    return ended


def wait_until_unusable(wrapper, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not wrapper.is_usable():
            return True
        time.sleep(0.01)
    return False


def test_a_healthy_connection_passes_the_check_without_a_statement():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the last statement before the check'")
    pid = connection.connection.info.backend_pid

    assert connection.is_usable()

    # Django's own check would have sent SELECT 1, and the server would name it here.
    assert last_statement_of(pid) == "SELECT 'the last statement before the check'"
    assert connection.connection.info.backend_pid == pid


def test_a_connection_whose_backend_the_server_ended_fails_the_check():
    victim = connection.copy()
    try:
        with victim.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert victim.is_usable()

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [victim.connection.info.backend_pid])

        assert wait_until_unusable(victim)
    finally:
        victim.close()


def test_a_server_whose_connections_were_ended_answers_the_next_requests_with_fresh_ones():
    # one worker of two threads: each keeps one persistent connection between requests
    server = LiveGunicorn(WEB_CONCURRENCY="1", GUNICORN_THREADS="2").start()
    try:
        for _ in range(4):
            with urllib.request.urlopen(f"{server.url}/readyz", timeout=10) as ready:  # noqa: S310 - loopback
                assert ready.status == 200

        assert terminate_backends_except_mine() >= 1

        # without a health check, each thread's first query would fail on its dead connection (a 503)
        for _ in range(6):
            with urllib.request.urlopen(f"{server.url}/readyz", timeout=10) as ready:  # noqa: S310 - loopback
                assert ready.status == 200
    finally:
        server.stop()
