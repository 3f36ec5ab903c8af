"""Database settings from the environment: read replica aliases and the pgBouncer transaction-pooling mode."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.db.backends.postgresql.base import DatabaseWrapper

from config.settings import pool_safe

BASE_DIR = Path(__file__).resolve().parents[2]
SHOW = (
    "import json; from config import settings as s; "
    "print(json.dumps({'databases': s.DATABASES, 'replicas': s.DATABASE_REPLICAS, "
    "'routers': getattr(s, 'DATABASE_ROUTERS', [])}, default=str))"
)
# A primary and a replica, each reached through a transaction-pooling pgBouncer.
BEHIND_TRANSACTION_POOLING = {
    "DATABASE_URL": "postgres://app@pgbouncer.internal:6432/billing",
    "DATABASE_REPLICA_URLS": "postgres://app@pgbouncer-replica.internal:6432/billing",
    "DATABASE_POOL_MODE": "transaction",
}


def settings_with(**environment) -> dict:
    """config.settings as a fresh process sees it with these variables (and none of the suite's)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DATABASE_", "REPLICA_"))}
    env.update(environment)
    done = subprocess.run(
        [sys.executable, "-c", SHOW], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(done.stdout)


def test_the_quick_start_has_no_replica_no_router_and_session_pooling():
    loaded = settings_with()

    assert list(loaded["databases"]) == ["default"]
    assert loaded["replicas"] == []
    assert loaded["routers"] == []
    assert "DISABLE_SERVER_SIDE_CURSORS" not in loaded["databases"]["default"]


def test_each_replica_url_becomes_an_alias_with_the_primarys_options():
    loaded = settings_with(
        DATABASE_URL="postgres://app:secret@primary.internal:5432/billing",
        DATABASE_REPLICA_URLS="postgres://app:secret@replica-a.internal:5432/billing,"
        "postgres://app:secret@replica-b.internal:6432/billing",
        CONN_MAX_AGE="30",
    )

    assert loaded["replicas"] == ["replica_1", "replica_2"]
    assert loaded["routers"] == ["ops_center.replicas.PrimaryWritesRouter"]
    first, second = loaded["databases"]["replica_1"], loaded["databases"]["replica_2"]
    assert (first["HOST"], second["HOST"], second["PORT"]) == ("replica-a.internal", "replica-b.internal", 6432)
    for replica in (first, second):
        assert replica["NAME"] == "billing"
        assert replica["CONN_MAX_AGE"] == 30
        assert replica["CONN_HEALTH_CHECKS"] is True
        assert replica["OPTIONS"]["connect_timeout"] == 2  # REPLICA_CONNECT_TIMEOUT; the primary keeps 3
        assert replica["TEST"] == {"MIRROR": "default"}
    assert loaded["databases"]["default"]["OPTIONS"]["connect_timeout"] == 3


def test_transaction_pooling_turns_off_server_side_cursors_and_prepared_statements_everywhere():
    loaded = settings_with(**BEHIND_TRANSACTION_POOLING)

    for alias in ("default", "replica_1"):
        database = loaded["databases"][alias]
        assert database["DISABLE_SERVER_SIDE_CURSORS"] is True, alias
        assert database["OPTIONS"]["prepare_threshold"] is None, alias


def test_a_pgbouncer_that_tracks_prepared_statements_keeps_them_but_not_server_side_cursors():
    loaded = settings_with(**BEHIND_TRANSACTION_POOLING, DATABASE_POOL_PREPARED_STATEMENTS="1")

    for alias in ("default", "replica_1"):
        database = loaded["databases"][alias]
        assert database["DISABLE_SERVER_SIDE_CURSORS"] is True, alias
        assert "prepare_threshold" not in database["OPTIONS"], alias  # psycopg's default: prepare after 5 runs


def test_an_unknown_pool_mode_is_refused():
    with pytest.raises(subprocess.CalledProcessError) as refused:
        settings_with(DATABASE_POOL_MODE="statement")
    assert "DATABASE_POOL_MODE" in refused.value.stderr


def test_replicas_need_postgresql():
    with pytest.raises(subprocess.CalledProcessError) as refused:
        settings_with(DATABASE_REPLICA_URLS="postgres://app@replica.internal/billing")  # primary is the SQLite default
    assert "Read replicas need PostgreSQL" in refused.value.stderr


@pytest.mark.postgresql_only("psycopg connection options")
@pytest.mark.django_db
def test_psycopg_takes_the_transaction_pooling_options():
    settings_dict = pool_safe(
        {**connection.settings_dict, "OPTIONS": {**connection.settings_dict["OPTIONS"]}}, "transaction"
    )
    wrapper = DatabaseWrapper(settings_dict, alias="pool_check")
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
        assert wrapper.connection.prepare_threshold is None
        assert wrapper.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] is True
    finally:
        wrapper.close()
