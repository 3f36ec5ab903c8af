"""The pgBouncer pass of `make test`, as a pytest plugin: ``pytest -p ops_center.tests.pgbouncer_pass``.

``scripts/test_services.py --pgbouncer`` puts a throwaway pgBouncer (Debian's
package) in transaction pooling in front of the throwaway primary and sets
DATABASE_POOL_MODE=transaction, so the tests of the pass talk to PostgreSQL as
production does behind pgBouncer. This plugin

* skips every test, with a message naming the package to install, when there
  is no pgbouncer binary (TEST_PGBOUNCER_MISSING) or no pgBouncer in front of
  the test database (TEST_PGBOUNCER_URL unset);
* checks at the end, on pgBouncer's admin console, that the test database's
  pool really is in transaction mode and served the pass's transactions, so a
  pass that quietly went straight to PostgreSQL fails.
"""

import os
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

NOT_BEHIND_PGBOUNCER = (
    "no pgBouncer in front of the test database: run the pass through scripts/test_services.py --pgbouncer, "
    "with Debian's pgbouncer "
    "(`sudo apt-get install pgbouncer`)"
)


def pytest_collection_modifyitems(config, items):
    reason = os.environ.get("TEST_PGBOUNCER_MISSING")
    if not reason and not os.environ.get("TEST_PGBOUNCER_URL"):
        reason = NOT_BEHIND_PGBOUNCER
    if reason:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=f"pgBouncer pass: {reason}"))


def pgbouncer_pools() -> dict[str, dict]:
    """SHOW POOLS and SHOW STATS of the throwaway pgBouncer, by database (simple query protocol only)."""
    admin = urlunsplit(urlsplit(os.environ["TEST_PGBOUNCER_URL"])._replace(path="/pgbouncer"))
    with psycopg.connect(admin, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        pools = conn.execute("SHOW POOLS")
        by_database = {row[0]: {"pool_mode": row[-1]} for row in pools.fetchall()}
        stats = conn.execute("SHOW STATS")
        names = [column.name for column in stats.description]
        for row in stats.fetchall():
            by_database.setdefault(row[0], {}).update(zip(names, row, strict=True))
    return by_database


@pytest.fixture(autouse=True, scope="session")
def _the_pass_went_through_pgbouncer(django_db_setup, django_db_blocker):
    yield
    if not os.environ.get("TEST_PGBOUNCER_URL"):
        return
    from django.db import connection

    pool = pgbouncer_pools().get(connection.settings_dict["NAME"])
    assert pool is not None, "no pgBouncer pool served the test database"
    assert pool["pool_mode"] == "transaction"
    assert pool["total_xact_count"] > 0
