"""A live API for the load-test tests: seed_demo data committed to the test database, served by gunicorn.

Package-scoped so Locust and k6 runs share one server; the data is flushed
afterwards, as a transactional test would leave it, and the catalog put back.
Tests using it carry `pytest.mark.django_db` only so that pytest-django sets
the test database up; they never touch it themselves.
"""

import csv
import importlib
import os
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command
from django.db import connection

from loadtests.tests.support import BIN, PROJECT_DIR
from ops_center.tests.static_root import collected_static_root

SEED = ("--users", "200", "--orgs", "10", "--transactions", "12000", "--seed", "8")


@dataclass(frozen=True)
class LiveApi:
    url: str
    keys: Path
    database_url: str
    pid: int  # gunicorn's master


def database_url() -> str:
    """The test database (pytest-django's NAME by now), as a URL for the server and the tamper plugin."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{credentials}@{quote(db['HOST'] or '127.0.0.1', safe='')}{port}/{quote(db['NAME'], safe='')}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def add_catalog() -> None:
    importlib.import_module("billing.migrations.0005_default_catalog").add_catalog(django_apps, None)


@pytest.fixture(scope="package")
def live_api(django_db_setup, django_db_blocker, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("live-api")
    keys = workdir / "keys.csv"
    with django_db_blocker.unblock():
        add_catalog()  # an earlier transactional test may have flushed it
        call_command("seed_demo", "--reset", *SEED, "--keys-out", str(keys), verbosity=0)
        busiest_users_first(keys)
        db_url = database_url()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "REDIS_", "TEST_"))}
    port = free_port()
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=db_url,
        # The server caches in the test Redis, so X-Cache answers are real.
        REDIS_URL=os.environ["TEST_REDIS_URL"],
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",
        CONN_MAX_AGE="0",
        BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="4",
        GUNICORN_ACCESS_LOG="",
        STATIC_ROOT=collected_static_root(),  # the production settings' gunicorn needs the manifest
    )
    log = workdir / "gunicorn.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "config/gunicorn.py", "config.wsgi"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/healthz", server, log)
        yield LiveApi(url=f"http://127.0.0.1:{port}", keys=keys, database_url=db_url, pid=server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        with django_db_blocker.unblock():
            call_command("flush", "--no-input", verbosity=0)
            add_catalog()


def busiest_users_first(keys: Path) -> None:
    """Reorder the CSV so the first end users have several pages of history to follow next_cursor through."""
    from django.db.models import Count

    from orgs.models import User

    with keys.open(newline="") as keys_file:
        rows = list(csv.DictReader(keys_file))
    ledger_rows = dict(
        User.objects.filter(username__in=[row["username"] for row in rows])
        .annotate(rows=Count("credit_transactions"))
        .values_list("username", "rows")
    )
    rows.sort(key=lambda row: -ledger_rows[row["username"]])  # stable: roles keep their own order otherwise
    with keys.open("w", newline="") as keys_file:
        writer = csv.DictWriter(keys_file, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def wait_until_serving(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"gunicorn exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback URL built here
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within 30 s:\n{log.read_text(errors='replace')[-3000:]}")
