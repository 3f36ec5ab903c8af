"""Short headless Locust runs against a live gunicorn on the test database."""

import csv
import json
import os
import subprocess

import pytest

from loadtests.tests.support import PROJECT_DIR, tool
from loadtests.thresholds import EXIT_THRESHOLD_BREACHED

# Only so that pytest-django creates the test database; the data comes from the live_api fixture.
pytestmark = pytest.mark.django_db

PERSONA_ENDPOINTS = {
    "EndUser": {
        "balance_check",
        "usage_summary",
        "transactions",
        "transactions_next_page",
        "purchase",
        "workflow_balance_before",
        "workflow_purchase",
        "workflow_balance_after",
        "workflow_transactions",
    },
    "OrgAdmin": {"org_subscription", "org_credit_pool", "org_members_usage", "org_allocate"},
    "SystemAdmin": {"platform_analytics", "revenue_trends", "subscriptions"},
}


LENIENT_THRESHOLDS = ("--p95-ms", "5000", "--p99-ms", "10000", "--balance-p95-ms", "5000", "--balance-p99-ms", "10000")


def run_locust(live_api, results, *args, locustfiles="loadtests/locustfile.py", extra_env=None):
    command = [
        tool("locust", "pip install -r requirements-load.txt"),
        "-f",
        locustfiles,
        "--headless",
        "--host",
        live_api.url,
        "--keys",
        str(live_api.keys),
        "--load-shape",
        "constant",
        "--csv",
        str(results / "locust"),
        "--html",
        str(results / "locust_report.html"),
        "--results-dir",
        str(results),
        "--only-summary",
        # Generous by default: these runs check behaviour, not this shared machine's speed.
        *LENIENT_THRESHOLDS,
        *args,
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOCUST_")}
    env.update(extra_env or {})
    return subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=180)


def stats_rows(results) -> dict[str, dict]:
    with (results / "locust_stats.csv").open(newline="") as stats:
        return {row["Name"]: row for row in csv.DictReader(stats)}


def summary(results) -> dict:
    return json.loads((results / "locust_summary.json").read_text())


def test_every_persona_hits_its_endpoints_with_2xx(live_api, tmp_path):
    run = run_locust(live_api, tmp_path, "--users", "10", "--spawn-rate", "10", "--rate", "60", "--run-time", "10s")

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows, result = stats_rows(tmp_path), summary(tmp_path)
    for persona, endpoints in PERSONA_ENDPOINTS.items():
        for name in endpoints:
            assert int(rows.get(name, {}).get("Request Count", 0)) > 0, f"{persona} never called {name}"
            assert rows[name]["Failure Count"] == "0", f"{persona}: {name} failed"
            assert any(status.startswith("2") for status in result["statuses"][name]), result["statuses"][name]
    # Anything but 2xx must be a documented business refusal, counted apart (e.g. pool exhausted).
    refused = sum(count for event, count in result["events"].items() if event.startswith("refused_"))
    non_2xx = sum(n for codes in result["statuses"].values() for code, n in codes.items() if not code.startswith("2"))
    assert non_2xx == refused
    assert result["passed"]
    assert result["events"]["workflow_verified"] > 0
    assert 0.3 < result["balance_check_share"] < 0.5  # the end users' most frequent task: about 40 % of all requests
    total = result["cache_hit_rate"][-1]
    assert total["name"] == "Aggregated"
    assert total["hits"] > 0
    assert 0 < total["hit_rate"] <= 1
    cache_csv = (tmp_path / "locust_cache_hit_rate.csv").read_text()
    assert cache_csv.startswith("name,hits,misses,hit_rate")
    assert "balance_check" in cache_csv
    report = (tmp_path / "locust_report.html").read_text()
    assert report.count('id="ops-center-load-test"') == 1
    assert report.index('id="ops-center-load-test"') > report.rindex("</script>")  # in the page, not in its code
    assert "Cache hit rate (X-Cache)" in run.stdout


def test_the_workflow_check_catches_a_wrong_balance(live_api, tmp_path):
    """tamper_balance.py takes one credit off in the database between the first balance read and the purchase."""
    run = run_locust(
        live_api,
        tmp_path,
        "EndUser",
        "--tags",
        "workflow",
        "--users",
        "2",
        "--spawn-rate",
        "2",
        "--rate",
        "8",
        "--run-time",
        "4s",
        locustfiles="loadtests/locustfile.py,loadtests/tests/tamper_balance.py",
        extra_env={"TAMPER_DATABASE_URL": live_api.database_url},
    )

    assert run.returncode == EXIT_THRESHOLD_BREACHED, run.stdout[-3000:] + run.stderr[-3000:]
    result = summary(tmp_path)
    purchases = int(stats_rows(tmp_path)["workflow_purchase"]["Request Count"])
    assert purchases > 0
    assert result["events"]["workflow_mismatches"] == int(
        stats_rows(tmp_path)["workflow_balance_after"]["Failure Count"]
    )
    assert result["events"]["workflow_mismatches"] >= purchases - 2  # all but a workflow cut off by the end
    assert "workflow_verified" not in result["events"]
    failures = (tmp_path / "locust_failures.csv").read_text()
    assert "balance rose by" in failures
    assert "expected" in failures
    assert "threshold breached: workflow_mismatches count<=0" in run.stderr


def test_impossible_thresholds_fail_the_run_and_name_the_breach(live_api, tmp_path):
    run = run_locust(
        live_api,
        tmp_path,
        "--users",
        "3",
        "--spawn-rate",
        "3",
        "--rate",
        "15",
        "--run-time",
        "3s",
        "--p95-ms",
        "0.001",
        "--balance-p99-ms",
        "0.001",
    )

    assert run.returncode == EXIT_THRESHOLD_BREACHED, run.stdout[-3000:] + run.stderr[-3000:]
    assert "threshold breached: http_req_duration p(95)<0.001" in run.stderr
    assert "threshold breached: balance_check_duration p(99)<0.001" in run.stderr
    assert "threshold breached: http_req_failed" not in run.stderr
    verdicts = {verdict["name"]: verdict["passed"] for verdict in summary(tmp_path)["thresholds"]}
    assert verdicts["http_req_duration p(95)<0.001"] is False
    assert verdicts["http_req_failed rate<0.01"] is True


@pytest.mark.parametrize("keys_content", ["username,role,org_id,api_key\n", None])
def test_a_missing_or_roleless_keys_file_fails_the_run(live_api, tmp_path, keys_content):
    keys = tmp_path / "keys.csv"
    if keys_content is not None:
        keys.write_text(keys_content)
    missing = type(live_api)(url=live_api.url, keys=keys, database_url=live_api.database_url, pid=live_api.pid)

    run = run_locust(missing, tmp_path, "--users", "2", "--rate", "4", "--run-time", "2s")

    assert run.returncode == 2, run.stdout[-3000:] + run.stderr[-3000:]
    assert ("not found" if keys_content is None else "no principal with role") in run.stderr
