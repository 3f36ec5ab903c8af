"""scripts/cpu_split.py on the real PostgreSQL and Redis of the test run."""

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection
from psycopg.conninfo import make_conninfo

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "cpu_split.py"

# Opens a connection of its own, keeps its backend busy for a second of wall time, and closes it.
SHORT_LIVED_BACKEND = (
    "import sys, psycopg\n"
    "with psycopg.connect(sys.argv[1], autocommit=True) as conn:\n"
    "    conn.execute(\"DO $$ BEGIN WHILE clock_timestamp() < now() + interval '1 second' LOOP END LOOP; END $$\")\n"
)


def database_dsn() -> str:
    """The test database as a libpq connection string."""
    database = connection.settings_dict
    return make_conninfo(
        host=database["HOST"] or "127.0.0.1",
        port=database["PORT"] or 5432,
        user=database["USER"],
        password=database["PASSWORD"] or None,
        dbname=database["NAME"],
    )


def test_cpu_split_refuses_before_the_run_when_it_could_not_count_the_requests(tmp_path):
    marker = tmp_path / "ran"
    command = [sys.executable, str(SCRIPT), "--app-port", "1", "--redis-port", "1", "--database", "x"]

    done = subprocess.run([*command, "--", "touch", str(marker)], capture_output=True, text=True, check=False)

    assert done.returncode == 2
    assert "cannot count the requests" in done.stderr
    assert not marker.exists()  # refused before the load command ran


@pytest.mark.django_db
def test_cpu_split_counts_a_backend_that_starts_and_ends_during_the_run(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: reads pg_stat_activity")
    dsn = database_dsn()
    redis_port = str(urlsplit(os.environ["TEST_REDIS_URL"]).port or 6379)
    output = tmp_path / "split.json"
    # Redis stands in for the app too: cpu_split only needs a process listening on each port.
    command = [sys.executable, str(SCRIPT), "--app-port", redis_port, "--redis-port", redis_port]
    command += ["--database", connection.settings_dict["NAME"], "--dsn", dsn, "--poll", "0.1"]
    command += ["--requests", "1", "--output", str(output)]

    done = subprocess.run(
        [*command, "--", sys.executable, "-c", SHORT_LIVED_BACKEND, dsn], capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(output.read_text())
    assert result["command_status"] == 0
    # The busy backend was gone before the run ended, yet most of its second of CPU is counted.
    assert result["postgresql_backends_ended"] == 1
    assert result["cpu_ms_per_request"]["postgresql"] >= 500
