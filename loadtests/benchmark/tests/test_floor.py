"""The floor app under the project's gunicorn config, and the floor-vs-balance script on live servers."""

import csv
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from billing.services import credits_purchase
from loadtests.benchmark.floor import FLOOR_VALUE
from loadtests.benchmark.floor_compare import parse_wrk, summarize
from ops_center.tests.live_server import PROJECT_DIR, LiveGunicorn, free_port, project_env
from orgs.services import api_key_create
from orgs.tests.factories import UserFactory

WRK_OUTPUT = """Running 1s test @ http://127.0.0.1:1/floor
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.10ms    3.20ms  40.00ms   90.00%
  Latency Distribution
     50%    6.78ms
     75%    8.00ms
     90%   10.00ms
     99%  156.45ms
  5903 requests in 3.02s, 1.50MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   1952.10
Transfer/sec:    508.00KB
"""


def get_json(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback URL built here
        return response.status, json.loads(response.read())


@pytest.mark.django_db(transaction=True)
def test_the_floor_app_serves_its_one_view_under_the_project_gunicorn_config():
    live = LiveGunicorn(DJANGO_SETTINGS_MODULE="config.settings_floor", WEB_CONCURRENCY="2").start()
    try:
        first = get_json(f"{live.url}/floor")
        second = get_json(f"{live.url}/floor")
        with pytest.raises(urllib.error.HTTPError) as not_routed:
            urllib.request.urlopen(f"{live.url}/api/v1/credits/balance", timeout=10)  # noqa: S310 - loopback
    finally:
        live.stop()

    assert first == (200, FLOOR_VALUE)
    assert second == (200, FLOOR_VALUE)
    assert not_routed.value.code == 404


def test_wrk_output_is_read_with_errors_and_percentiles():
    assert parse_wrk(WRK_OUTPUT) == {
        "requests": 5903,
        "rps": 1952.1,
        "non_2xx": 4,
        "socket_errors": 3,
        "p50_ms": 6.78,
        "p99_ms": 156.45,
    }


def test_medians_and_the_ratio_are_balance_over_floor():
    def run(rps, cpu):
        return {"rps": rps, "server_cpu_ms_per_request": cpu, "p50_ms": 1.0, "p99_ms": 2.0}

    summary = summarize(
        {"floor": [run(1000, 1.0), run(2000, 0.5), run(1500, 0.8)], "balance": [run(500, 2.0), run(750, 1.6)]}
    )

    assert summary["medians"]["floor"]["rps"] == 1500
    assert summary["medians"]["balance"]["server_cpu_ms_per_request"] == 1.8
    assert summary["ratio_balance_over_floor"]["rps"] == 0.417
    assert summary["ratio_balance_over_floor"]["server_cpu_ms_per_request"] == 2.25


@pytest.mark.django_db(transaction=True)
def test_the_script_alternates_wrk_runs_and_prints_medians_and_the_ratio(tmp_path, default_catalog):
    if shutil.which("wrk") is None:
        pytest.skip("needs wrk (sudo apt-get install wrk); .ci/run installs it")
    user = UserFactory()
    credits_purchase(user=user, credits=Decimal("100"))
    keys = tmp_path / "keys.csv"
    with keys.open("w", newline="") as out:
        rows = [("username", "role", "org_id", "api_key"), (user.username, "user", "", api_key_create(user=user)[1])]
        csv.writer(out).writerows(rows)
    output = tmp_path / "floor.json"

    result = subprocess.run(
        [
            str(PROJECT_DIR / "scripts" / "floor_vs_balance.sh"),
            *("--keys", str(keys), "--rounds", "2", "--duration", "1", "--connections", "2"),
            *("--floor-port", str(free_port()), "--balance-port", str(free_port())),
            *("--logs", str(tmp_path), "--output", str(output)),
        ],
        cwd=PROJECT_DIR,
        env=project_env(WEB_CONCURRENCY="2"),
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads(output.read_text())
    assert [len(document["runs"][name]) for name in ("floor", "balance")] == [2, 2]
    for run in document["runs"]["floor"] + document["runs"]["balance"]:
        assert run["requests"] > 0
        assert run["non_2xx"] == 0
        assert run["server_cpu_ms_per_request"] > 0
        assert run["server_processes"] == 3
    assert document["ratio_balance_over_floor"]["rps"] > 0
    assert "ratio b/f" in result.stdout
    assert [line.split()[2] for line in result.stdout.splitlines() if line.startswith("round")] == [
        "floor",
        "balance",
        "balance",
        "floor",
    ]
