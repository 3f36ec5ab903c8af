"""dbstats on PostgreSQL with and without pg_stat_statements, analyze, and both refusing SQLite."""

import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from billing.management.commands.analyze import billing_tables
from billing.tests.factories import CreditTransactionFactory
from ops_center.management.commands.dbstats import CREATE_HINT, PRELOAD_HINT
from ops_center.tests.live_server import PROJECT_DIR

REPORT_INDEX_COLUMNS = ["schemaname", "tablename", "indexname", "idx_scan", "idx_tup_read", "idx_tup_fetch"]


def dbstats_json(**options) -> dict:
    out = io.StringIO()
    call_command("dbstats", "--json", stdout=out, **options)
    return json.loads(out.getvalue())


def manage(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "REDIS_"))}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", DATABASE_URL=database_url)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def server_preloads_pg_stat_statements() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SHOW shared_preload_libraries")
        return "pg_stat_statements" in cursor.fetchone()[0]


@pytest.mark.django_db
def test_dbstats_reports_every_section_of_the_test_database():
    CreditTransactionFactory.create_batch(3)

    stats = dbstats_json(limit=50)

    assert stats["database"] == connection.settings_dict["NAME"]
    usage = stats["index_usage"]
    assert usage
    assert all(list(row) == REPORT_INDEX_COLUMNS for row in usage)
    assert [row["idx_scan"] for row in usage] == sorted((row["idx_scan"] for row in usage), reverse=True)
    for row in stats["index_usage_share"]:
        assert 0 <= row["index_usage_pct"] <= 100
        assert row["seq_scan"] + row["idx_scan"] > 0
    unused = {row["indexname"] for row in stats["unused_indexes"]}
    assert "credit_transactions_pkey" not in unused  # keys enforce constraints: never "unused"
    sizes = {row["tablename"]: row for row in stats["table_sizes"]}
    assert {"credit_transactions", "subscriptions", "credit_pools"} <= set(sizes)
    ledger = sizes["credit_transactions"]
    assert ledger["total_bytes"] >= ledger["table_bytes"] + ledger["index_bytes"] > 0
    for scope in ("database", "tables", "indexes"):
        ratio = stats["buffer_cache"][scope]
        assert ratio["hit_pct"] is None or 0 <= ratio["hit_pct"] <= 100
    assert stats["buffer_cache"]["database"]["hits"] > 0
    links = stats["connections"]
    assert 1 <= links["active"] <= links["total"] <= links["max_connections"]


@pytest.mark.django_db
def test_without_pg_stat_statements_dbstats_says_how_to_enable_it():
    expected = CREATE_HINT if server_preloads_pg_stat_statements() else PRELOAD_HINT

    slow = dbstats_json()["slow_statements"]
    out = io.StringIO()
    call_command("dbstats", stdout=out)

    assert slow == {"available": False, "hint": expected}
    text = " ".join(out.getvalue().split())
    assert f"Slowest statements: unavailable. {expected}" in text
    for heading in ("Index usage (most scanned)", "Index usage share per table", "Unused indexes", "Table sizes"):
        assert heading in text
    assert "Shared-buffer cache hit ratio" in text
    assert "of max_connections" in text


@contextmanager
def postgres_with_pg_stat_statements():
    """A throwaway PostgreSQL that preloads pg_stat_statements, built with scripts/test_services.py's helpers."""
    spec = importlib.util.spec_from_file_location("test_services", PROJECT_DIR / "scripts" / "test_services.py")
    services = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(services)
    initdb = services.find_binary("initdb", ("/usr/lib/postgresql/*/bin/initdb",), "postgresql")
    pg_ctl = str(Path(initdb).resolve().with_name("pg_ctl"))
    with tempfile.TemporaryDirectory(prefix="ops-center-pgss-") as workdir:
        data, log, sockets = Path(workdir) / "pgdata", Path(workdir) / "postgres.log", Path(workdir) / "sockets"
        sockets.mkdir()
        owner = services.unprivileged_user()
        if owner:
            for path in (Path(workdir), sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        port = services.free_port()
        run = services.as_unprivileged
        subprocess.run(
            run([initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"]),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        options = (
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c shared_preload_libraries=pg_stat_statements"
        )
        started = subprocess.run(run([pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]))
        if started.returncode != 0:
            reason = log.read_text(errors="replace")[-1000:]
            if 'could not access file "pg_stat_statements"' in reason:
                pytest.skip("pg_stat_statements is not installed (Debian: postgresql-contrib)")
            pytest.fail(f"PostgreSQL with pg_stat_statements did not start:\n{reason}")
        try:
            services.wait_for_port(port, "PostgreSQL", log)
            yield f"postgres://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(run([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), stdout=subprocess.DEVNULL)


def test_with_pg_stat_statements_dbstats_lists_the_slowest_statements():
    with postgres_with_pg_stat_statements() as url:
        # Preloaded but not yet created in this database: the hint says which step is missing.
        before = manage(url, "dbstats", "--json")
        assert before.returncode == 0, before.stderr
        assert json.loads(before.stdout)["slow_statements"] == {"available": False, "hint": CREATE_HINT}

        with psycopg.connect(url, autocommit=True) as db:
            db.execute("CREATE EXTENSION pg_stat_statements")
            for _ in range(3):
                db.execute("SELECT pg_sleep(0.05)")
        as_json = manage(url, "dbstats", "--json", "--limit", "50")
        as_text = manage(url, "dbstats")

    assert as_json.returncode == 0, as_json.stderr
    slow = json.loads(as_json.stdout)["slow_statements"]
    assert slow["available"] is True
    sleeps = [row for row in slow["statements"] if "pg_sleep" in row["query"]]
    assert len(sleeps) == 1
    assert sleeps[0]["calls"] == 3
    assert sleeps[0]["mean_ms"] >= 50
    assert sleeps[0]["total_ms"] >= 150
    assert slow["statements"][0]["mean_ms"] == max(row["mean_ms"] for row in slow["statements"])
    assert set(slow["statements"][0]) == {"query", "calls", "total_ms", "mean_ms", "max_ms", "rows"}
    assert "Slowest statements by mean time (pg_stat_statements)" in as_text.stdout
    assert "pg_sleep" in as_text.stdout


@pytest.mark.parametrize("command", ["dbstats", "analyze"])
def test_sqlite_gets_a_clear_message_instead_of_diagnostics(tmp_path, command):
    result = manage(f"sqlite:///{tmp_path / 'quick.sqlite3'}", command)

    assert result.returncode == 1
    assert "PostgreSQL" in result.stderr
    assert "sqlite" in result.stderr
    assert "Traceback" not in result.stderr


def last_maintenance(table: str) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT last_vacuum, last_analyze FROM pg_stat_user_tables WHERE relname = %s AND schemaname = 'public'",
            [table],
        )
        return cursor.fetchone()


@pytest.mark.django_db(transaction=True)
def test_analyze_vacuums_and_analyzes_every_billing_table():
    out = io.StringIO()

    call_command("analyze", stdout=out)

    lines = out.getvalue().splitlines()
    tables = billing_tables()
    expected = {"credit_transactions", "subscriptions", "credit_pools", "usage_daily", "billing_invoice"}
    assert expected | {"billing_creditaccount", "billing_creditallocation"} <= set(tables)
    assert [line.split()[2] for line in lines[:-1]] == tables
    assert lines[-1].startswith(f"{len(tables)} tables vacuumed and analyzed")
    for table in tables:
        vacuumed, analyzed = last_maintenance(table)
        assert vacuumed is not None, table
        assert analyzed is not None, table


@pytest.mark.django_db(transaction=True)
def test_analyze_can_be_limited_to_named_billing_tables():
    untouched_before, ledger_before = last_maintenance("subscriptions"), last_maintenance("credit_transactions")
    out = io.StringIO()

    call_command("analyze", "credit_transactions", stdout=out)

    assert out.getvalue().startswith("VACUUM (ANALYZE) credit_transactions")
    assert len(out.getvalue().splitlines()) == 2
    assert last_maintenance("subscriptions") == untouched_before
    assert last_maintenance("credit_transactions") != ledger_before
    with pytest.raises(CommandError, match="not billing tables: orgs_user"):
        call_command("analyze", "orgs_user")


@pytest.mark.django_db
def test_analyze_refuses_to_run_inside_a_transaction():
    with pytest.raises(CommandError, match="inside a transaction"):
        call_command("analyze")
