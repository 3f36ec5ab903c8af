"""manage.py benchmark against a live gunicorn that serves the test database and the test Redis."""

import csv
import json
import struct
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from billing.demo.keys_csv import DemoKey
from billing.models import CreditTransaction
from billing.selectors import personal_balance_amount
from billing.services import credits_purchase
from billing.tests.factories import CreditPoolFactory, PlanFactory, SubscriptionFactory
from loadtests.benchmark import server_cpu
from loadtests.benchmark.stats import COMPARED_FIGURES, compare, percentile
from loadtests.benchmark.targets import BENCHMARKED_ENDPOINTS, DEBIT_ENDPOINT, resolve_targets
from ops_center.tests.live_server import PROJECT_DIR, LiveGunicorn, project_env
from orgs.models import Membership
from orgs.services import api_key_create
from orgs.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

BALANCE = "/api/v1/credits/balance"
FIGURES = {
    "endpoint",
    "role",
    "paths",
    "principals",
    "passed_over",
    "iterations",
    "total_time_s",
    "successes",
    "failures",
    "success_pct",
    "failure_statuses",
    "average_ms",
    "min_ms",
    "max_ms",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "throughput_rps",
    "cache_hits",
    "cache_misses",
    "cache_hit_pct",
    "server_cpu",
    "client_cpu",
    "samples_ms",
}


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    """The real API plus /api/v1/boom, which always fails with a 500."""
    settings_dir = tmp_path_factory.mktemp("settings")
    (settings_dir / "failing_view_settings.py").write_text(
        'from config.settings import *  # noqa: F403\nROOT_URLCONF = "ops_center.tests.urls_with_failing_view"\n'
    )
    live = LiveGunicorn(
        DJANGO_SETTINGS_MODULE="failing_view_settings", PYTHONPATH=str(settings_dir), WEB_CONCURRENCY="2"
    ).start()
    yield live
    live.stop()


@pytest.fixture
def keys_csv(tmp_path, default_catalog) -> Path:
    """A keys CSV as seed_demo writes it, for a funded user, an org admin and a staff user."""
    user = UserFactory()
    credits_purchase(user=user, credits=Decimal("100"))
    org = OrganizationFactory()
    SubscriptionFactory(org=org, plan=PlanFactory(code="pro"))
    CreditPoolFactory(org=org)
    admin = MembershipFactory(org=org, role=Membership.Role.ADMIN).user
    staff = UserFactory(is_staff=True)
    return write_keys(tmp_path / "keys.csv", [(user, "user", ""), (admin, "org_admin", org.id), (staff, "staff", "")])


def write_keys(path: Path, principals: list[tuple]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("username", "role", "org_id", "api_key"))
        for user, role, org_id in principals:
            writer.writerow((user.username, role, org_id, api_key_create(user=user)[1]))
    return path


def benchmark(server: LiveGunicorn, keys: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "benchmark", "--host", server.url, "--keys", str(keys), *args],
        cwd=PROJECT_DIR,
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def git_head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"],  # noqa: S607
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


# Data must be committed for the server to see it.
live = pytest.mark.django_db(transaction=True)


@live
def test_the_json_holds_every_figure_for_every_report_endpoint(server, keys_csv, tmp_path):
    output = tmp_path / "run.json"

    result = benchmark(
        server, keys_csv, "--iterations", "30", "--concurrency", "2", "--warmup", "2", "--output", output
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads(output.read_text())
    assert document["git_commit"] == git_head()
    assert document["settings"] | {"host": None, "server_cpu": None} == {
        "host": None,
        "server_cpu": None,
        "iterations": 30,
        "concurrency": 2,
        "warmup": 2,
        "mode": "warm",
        "timeout_s": 30.0,
        "keys": "keys.csv",
        "clock": "time.perf_counter_ns (monotonic)",
        "percentiles": "nearest-rank over all samples",
    }
    master = server.process.pid
    assert document["settings"]["server_cpu"]["pid"] == master  # found by the port --host names
    workers = {pid for pid, parent in server_cpu._parents().items() if parent == master}
    assert len(workers) == 2  # WEB_CONCURRENCY=2
    assert list(document["endpoints"]) == [endpoint.label for endpoint in BENCHMARKED_ENDPOINTS]
    for label, figures in document["endpoints"].items():
        assert set(figures) == FIGURES, label
        # The server's CPU over the measured phase: the master and both workers, per request completed.
        cpu = figures["server_cpu"]
        assert cpu["measured"] is True, label
        assert set(cpu["pids"]) == {master} | workers, label
        assert cpu["requests"] == 30, label
        # The kernel counts CPU in whole clock ticks, and 30 cache hits can cost less than one tick.
        ticks = cpu["cpu_s"] * server_cpu.CLOCK_TICKS
        assert ticks >= 0, label
        assert ticks == pytest.approx(round(ticks)), label
        assert cpu["ms_per_request"] == pytest.approx(1000 * cpu["cpu_s"] / 30, abs=0.0001), label
        assert figures["client_cpu"]["measured"] is True, label
        assert (figures["iterations"], figures["successes"], figures["failures"]) == (30, 30, 0), label
        samples = sorted(figures["samples_ms"])
        assert len(samples) == 30
        assert figures["min_ms"] == samples[0]
        assert figures["max_ms"] == samples[-1]
        for p in (50, 95, 99):
            assert figures[f"p{p}_ms"] == percentile(samples, p)
        assert figures["average_ms"] == pytest.approx(sum(samples) / 30, abs=0.001)
        assert figures["throughput_rps"] == pytest.approx(30 / figures["total_time_s"], rel=0.01)
        # Warmed up, so every measured read is a cache hit.
        assert (figures["cache_hits"], figures["cache_hit_pct"]) == (30, 100.0), label
    assert sum(figures["server_cpu"]["cpu_s"] for figures in document["endpoints"].values()) > 0
    org_paths = document["endpoints"]["GET /api/v1/org-billing/organizations/{id}/subscription"]["paths"]
    assert org_paths == [f"/api/v1/org-billing/organizations/{Membership.objects.get().org_id}/subscription"]
    for heading in ("Benchmark: GET /api/v1/credits/balance", "Iterations:    30", "Success:       30/30 (100.0%)"):
        assert heading in result.stdout
    assert f"processes, pid {master} and descendants)" in result.stdout
    for line in ("Latency Statistics:", "  p95:", "  p99:", "Throughput:", "Server CPU:", "Client CPU:", "Cache:"):
        assert line in result.stdout
    assert "nearest-rank" in result.stdout


@live
def test_compare_puts_each_figure_beside_the_baseline_with_its_ratio(server, keys_csv, tmp_path):
    first = tmp_path / "first.json"
    assert benchmark(server, keys_csv, "--endpoint", BALANCE, "--iterations", "20", "--output", first).returncode == 0
    # A baseline far faster on p50 and throughput, far slower on p95: the run is bound to regress on exactly those.
    baseline = json.loads(first.read_text())
    measured = baseline["endpoints"][f"GET {BALANCE}"]
    measured.update(p50_ms=measured["p50_ms"] / 100, p95_ms=measured["p95_ms"] * 100)
    measured["throughput_rps"] *= 100
    baseline_path = tmp_path / "baseline.json"
    baseline_path.write_text(json.dumps(baseline))
    current_path = tmp_path / "current.json"

    result = benchmark(
        server,
        keys_csv,
        "--endpoint",
        BALANCE,
        "--iterations",
        "20",
        "--compare",
        baseline_path,
        "--output",
        current_path,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    current = json.loads(current_path.read_text())["endpoints"][f"GET {BALANCE}"]
    comparison = current["comparison"]
    assert set(comparison) == set(COMPARED_FIGURES)
    for figure, numbers in comparison.items():
        assert numbers["baseline"] == measured[figure]
        assert numbers["current"] == current[figure]
        assert numbers["ratio"] == pytest.approx(current[figure] / measured[figure])
    regressed = {figure for figure, numbers in comparison.items() if numbers["regression"]}
    assert {"p50_ms", "throughput_rps"} <= regressed
    assert not {"p95_ms", "success_pct", "cache_hit_pct"} & regressed
    table = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ") and "_" in line}
    assert table["p50_ms"].endswith("REGRESSION")
    assert not table["p95_ms"].endswith("REGRESSION")
    assert "regression(s) beyond 10%" in result.stdout


@live
def test_a_failing_endpoint_is_counted_by_status_and_exits_non_zero(server, keys_csv, tmp_path):
    output = tmp_path / "failing.json"

    result = benchmark(server, keys_csv, "--endpoint", "/api/v1/boom", "--iterations", "15", "--output", output)

    assert result.returncode == 1
    assert "15 of 15 requests failed" in result.stderr
    figures = json.loads(output.read_text())["endpoints"]["GET /api/v1/boom"]
    assert (figures["successes"], figures["failures"], figures["failure_statuses"]) == (0, 15, {"500": 15})
    assert figures["samples_ms"] == []
    assert figures["p50_ms"] is None
    assert "Failures:      500 x 15" in result.stdout


@live
def test_one_failure_among_successes_still_exits_non_zero(server, keys_csv, tmp_path):
    result = benchmark(
        server, keys_csv, "--endpoint", BALANCE, "--endpoint", "/api/v1/credits/nope", "--iterations", "5"
    )

    assert result.returncode == 1
    assert "Success:       5/5 (100.0%)" in result.stdout
    assert "Failures:      404 x 5" in result.stdout


@live
def test_principals_whose_org_lacks_the_resource_are_passed_over(server, tmp_path):
    bare_org = OrganizationFactory()  # no subscription: its admin gets 404
    bare_admin = MembershipFactory(org=bare_org, role=Membership.Role.ADMIN).user
    org = OrganizationFactory()
    SubscriptionFactory(org=org, plan=PlanFactory(code="pro"))
    admin = MembershipFactory(org=org, role=Membership.Role.ADMIN).user
    keys = write_keys(tmp_path / "keys.csv", [(bare_admin, "org_admin", bare_org.id), (admin, "org_admin", org.id)])
    output = tmp_path / "run.json"
    endpoint = "/api/v1/org-billing/organizations/{id}/subscription"

    result = benchmark(
        server, keys, "--endpoint", endpoint, "--iterations", "8", "--concurrency", "2", "--output", output
    )

    assert result.returncode == 0, result.stdout[-2000:]
    figures = json.loads(output.read_text())["endpoints"][f"GET {endpoint}"]
    assert figures["passed_over"] == [bare_admin.username]
    assert figures["principals"] == [admin.username]
    assert figures["successes"] == 8
    assert "Passed over:   1 principal(s) whose path is a 404" in result.stdout


@live
def test_a_refused_connection_is_a_failure_not_a_sample(keys_csv, tmp_path):
    closed = LiveGunicorn()  # never started: nothing listens on its port
    output = tmp_path / "refused.json"

    result = benchmark(
        closed, keys_csv, "--endpoint", BALANCE, "--iterations", "3", "--warmup", "0", "--output", output
    )

    assert result.returncode == 1
    figures = json.loads(output.read_text())["endpoints"][f"GET {BALANCE}"]
    assert figures["failure_statuses"] == {"error: NewConnectionError": 3}
    assert figures["samples_ms"] == []
    assert figures["server_cpu"] == {"measured": False, "reason": f"no readable process listens on port {closed.port}"}
    assert "Server CPU:    not measured (no readable process listens on port" in result.stdout


@live
def test_server_pid_names_the_server_when_it_cannot_be_found_by_port(server, keys_csv, tmp_path):
    output = tmp_path / "given.json"
    master = server.process.pid

    result = benchmark(
        server, keys_csv, "--endpoint", BALANCE, "--iterations", "200", "--server-pid", str(master), "--output", output
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads(output.read_text())
    assert document["settings"]["server_cpu"]["found_by"] == "given"
    cpu = document["endpoints"][f"GET {BALANCE}"]["server_cpu"]
    assert (cpu["pid"], cpu["processes"], cpu["requests"]) == (master, 3, 200)
    assert cpu["cpu_s"] > 0


@live
def test_cold_mode_measures_misses_and_warm_mode_hits(server, keys_csv, tmp_path):
    runs = {}
    for mode in ("cold", "warm"):
        output = tmp_path / f"{mode}.json"
        result = benchmark(
            server, keys_csv, "--endpoint", BALANCE, "--iterations", "12", "--mode", mode, "--output", output
        )
        assert result.returncode == 0, result.stderr[-3000:]
        runs[mode] = json.loads(output.read_text())["endpoints"][f"GET {BALANCE}"]

    assert (runs["cold"]["cache_hits"], runs["cold"]["cache_misses"]) == (0, 12)
    assert (runs["warm"]["cache_hits"], runs["warm"]["cache_misses"]) == (12, 0)


@live
def test_plot_draws_a_png_with_the_baseline_beside_the_run(server, keys_csv, tmp_path):
    baseline = tmp_path / "baseline.json"
    args = ("--endpoint", BALANCE, "--endpoint", "/api/v1/credits/transactions", "--iterations", "15")
    assert benchmark(server, keys_csv, *args, "--output", baseline).returncode == 0
    plot = tmp_path / "latency.png"

    result = benchmark(server, keys_csv, *args, "--compare", baseline, "--plot", plot)

    assert result.returncode == 0, result.stderr[-3000:]
    header = plot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert width > 1000  # two panels side by side
    assert height > 200


# Endpoint resolution and statistics, without a server.

KEYS = [
    DemoKey("u1", "user", None, "key-u1"),
    DemoKey("a1", "org_admin", 7, "key-a1"),
    DemoKey("a2", "org_admin", 9, "key-a2"),
    DemoKey("s1", "staff", None, "key-s1"),
]


@live
def test_the_debit_benchmark_writes_each_request_once_spread_over_the_users(server, tmp_path, default_catalog):
    # given: three funded users
    users = [UserFactory() for _ in range(3)]
    for user in users:
        credits_purchase(user=user, credits=Decimal("10"))
    keys = write_keys(tmp_path / "keys.csv", [(user, "user", "") for user in users])
    output = tmp_path / "debits.json"

    # when: 40 measured debits from 2 workers, after 3 warm-up debits each
    result = benchmark(
        server, keys, "--endpoint", "/api/v1/credits/usage", "--iterations", "40", "--concurrency", "2",
        "--warmup", "3", "--output", output,
    )  # fmt: skip

    # then: every request was a debit of its own (a fresh Idempotency-Key each), by every user
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [figures] = json.loads(output.read_text())["endpoints"].values()
    assert (figures["endpoint"], figures["successes"], figures["failures"]) == ("POST /api/v1/credits/usage", 40, 0)
    assert figures["principals"] == sorted(user.username for user in users)
    debits = CreditTransaction.objects.filter(user__in=users, transaction_type=CreditTransaction.Type.USAGE)
    assert debits.count() == 46
    assert debits.values("idempotency_key").distinct().count() == 46
    assert set(debits.values_list("user_id", flat=True)) == {user.pk for user in users}
    spent = Decimal("30") - sum(personal_balance_amount(user_id=user.pk) for user in users)
    assert spent == Decimal("0.0046")


def test_the_debit_is_benchmarked_only_when_named():
    assert DEBIT_ENDPOINT not in [target.endpoint for target in resolve_targets(["all"], KEYS, "user")]
    (target,) = resolve_targets(["/api/v1/credits/usage"], KEYS, "user")
    assert (target.endpoint, target.endpoint.label) == (DEBIT_ENDPOINT, "POST /api/v1/credits/usage")


def test_all_is_the_report_endpoints_each_called_by_its_role_with_real_org_ids():
    targets = resolve_targets(["all"], KEYS, default_role="user")

    assert [target.endpoint for target in targets] == list(BENCHMARKED_ENDPOINTS)
    callers = [[who.username for _, who in target.calls] for target in targets]
    assert callers == [["u1"], ["u1"], ["u1"], ["a1", "a2"], ["a1", "a2"], ["s1"], ["s1"]]
    assert [path for path, _ in targets[3].calls] == [
        "/api/v1/org-billing/organizations/7/subscription",
        "/api/v1/org-billing/organizations/9/subscription",
    ]


def test_a_path_with_a_real_id_is_called_by_that_orgs_admin_and_filed_under_its_template():
    (target,) = resolve_targets(["/api/v1/org-billing/organizations/9/credit-pool"], KEYS, "user")

    assert target.endpoint.label == "GET /api/v1/org-billing/organizations/{id}/credit-pool"
    assert [(path, who.username) for path, who in target.calls] == [
        ("/api/v1/org-billing/organizations/9/credit-pool", "a2")
    ]


def test_a_missing_role_is_an_error_not_a_skipped_endpoint():
    with pytest.raises(ValueError, match="no 'staff' principal"):
        resolve_targets(["all"], [p for p in KEYS if p.role != "staff"], "user")


@pytest.mark.parametrize("p", [1, 50, 95, 99, 100])
def test_nearest_rank_percentile_of_one_to_a_hundred(p):
    assert percentile(list(range(1, 101)), p) == p


def test_nearest_rank_percentile_is_always_a_measured_sample():
    samples = [1.5, 2.0, 9.0, 40.0]

    assert [percentile(samples, p) for p in (25, 26, 50, 51, 75, 99)] == [1.5, 2.0, 2.0, 9.0, 9.0, 40.0]
    assert percentile([7.0], 99) == 7.0


def test_regressions_are_judged_by_direction_and_tolerance():
    baseline = dict.fromkeys(COMPARED_FIGURES, 100.0) | {"cache_hit_pct": 0.0}
    current = baseline | {"p50_ms": 109.0, "p95_ms": 111.0, "throughput_rps": 91.0, "success_pct": 89.0}

    comparison = compare(current, baseline, tolerance_pct=10)

    assert comparison["p50_ms"] == {
        "baseline": 100.0,
        "current": 109.0,
        "ratio": pytest.approx(1.09),
        "regression": False,
    }
    assert comparison["p95_ms"]["regression"]
    assert not comparison["throughput_rps"]["regression"]
    assert comparison["success_pct"]["regression"]
    assert comparison["cache_hit_pct"] == {"baseline": 0.0, "current": 0.0, "ratio": None, "regression": False}
