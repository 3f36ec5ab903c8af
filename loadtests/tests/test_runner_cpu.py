"""run_load_tests.sh adds the server's and the generator's CPU per request to each tool's JSON summary."""

import json
import os
import subprocess

import pytest

from loadtests.benchmark.server_cpu import _parents
from loadtests.tests.support import PROJECT_DIR, tool

# Generous: these runs check the CPU figures, not this shared machine's speed.
LENIENT_ENV = {
    "LOCUST_P95_MS": "5000",
    "LOCUST_P99_MS": "10000",
    "LOCUST_BALANCE_P95_MS": "5000",
    "LOCUST_BALANCE_P99_MS": "10000",
    "THRESHOLD_P95_MS": "5000",
    "THRESHOLD_P99_MS": "10000",
    "THRESHOLD_BALANCE_CHECK_P95_MS": "5000",
    "THRESHOLD_BALANCE_CHECK_P99_MS": "10000",
}


def run_script(live_api, results, *args) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LOCUST_", "K6_"))}
    env.update(LENIENT_ENV, VENV_BIN=os.path.dirname(tool("python", "a venv")))
    return subprocess.run(
        [
            str(PROJECT_DIR / "loadtests" / "run_load_tests.sh"),
            *("--host", live_api.url, "--keys", str(live_api.keys), "--results", str(results)),
            *("--shape", "constant", "--headless", *args),
        ],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def assert_cpu_figures(summary: dict, live_api, requests: int) -> None:
    workers = {pid for pid, parent in _parents().items() if parent == live_api.pid}
    assert len(workers) == 2  # WEB_CONCURRENCY=2
    server = summary["server_cpu"]
    assert server["measured"] is True
    assert server["pid"] == live_api.pid
    assert set(server["pids"]) == {live_api.pid} | workers
    assert server["requests"] == requests > 0
    assert server["cpu_s"] > 0
    assert server["ms_per_request"] == pytest.approx(1000 * server["cpu_s"] / requests, abs=0.0001)
    client = summary["client_cpu"]
    assert client["requests"] == requests
    assert client["cpu_s"] > 0


@pytest.mark.django_db  # only so that pytest-django creates the test database for live_api
def test_a_k6_run_reports_the_server_cpu_of_the_process_listening_on_the_port(live_api, tmp_path):
    run = run_script(live_api, tmp_path, "--tool", "k6", "--rate", "40", "--duration", "5")

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((tmp_path / "k6_summary.json").read_text())
    assert summary["server_cpu"]["found_by"] == f"listening on port {live_api.url.rsplit(':', 1)[1]}"
    assert_cpu_figures(summary, live_api, summary["requests"])
    assert "Server CPU:" in run.stdout
    assert "Client CPU:" in run.stdout


@pytest.mark.django_db
def test_a_locust_run_with_workers_reports_cpu_for_a_given_server_pid(live_api, tmp_path):
    run = run_script(
        live_api,
        tmp_path,
        *("--tool", "locust", "--workers", "2", "--rate", "40", "--users", "8", "--spawn-rate", "8"),
        *("--duration", "6", "--server-pid", str(live_api.pid)),
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((tmp_path / "locust_summary.json").read_text())
    assert summary["server_cpu"]["found_by"] == "given"
    assert_cpu_figures(summary, live_api, summary["overall"]["requests"])
    assert f"processes, pid {live_api.pid} and descendants)" in run.stdout
