"""server_cpu on real processes: a parent whose children burn CPU, and a real gunicorn."""

import json
import subprocess
import sys
import textwrap
import urllib.request

import pytest

from loadtests.benchmark import server_cpu
from ops_center.tests.live_server import LiveGunicorn

# A parent that starts N children; each burns at least BURN_S of its own CPU (by its process clock, so the
# amount of work, not the time it takes, is fixed), then waits for a line on stdin. The parent burns nothing.
CHILD = (
    "import sys, time\n"
    "while time.process_time() < float(sys.argv[1]): pass\n"
    "print('done', flush=True)\n"
    "sys.stdin.readline()"
)
FAMILY = textwrap.dedent(
    """
    import subprocess, sys
    count, burn, child_code = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
    children = [subprocess.Popen([sys.executable, "-c", child_code, burn], **pipes) for _ in range(count)]
    for child in children:
        child.stdout.readline()
    print("burnt", flush=True)
    line = sys.stdin.readline()
    if line.strip() == "reap":  # end the children and wait for them: their CPU moves to this process's cutime
        for child in children:
            child.stdin.close()
            child.wait()
        print("reaped", flush=True)
        sys.stdin.readline()
    """
)
BURN_S = 0.3
TICKS_SLACK = 2 / server_cpu.CLOCK_TICKS


@pytest.fixture
def family():
    parent = subprocess.Popen(
        [sys.executable, "-c", FAMILY, "2", str(BURN_S), CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    yield parent
    parent.kill()
    parent.wait()


def test_a_sample_sums_the_parent_and_all_its_children(family):
    before = server_cpu.sample(family.pid)
    assert family.stdout.readline().strip() == "burnt"

    after = server_cpu.sample(family.pid)

    assert after.pids[0] == family.pid
    assert len(after.pids) == 3
    parent_alone = server_cpu.process_cpu_s(family.pid)
    children = [server_cpu.process_cpu_s(pid) for pid in after.pids[1:]]
    # Each child burnt at least BURN_S; /proc truncates utime and stime to whole ticks, so two ticks of slack.
    assert min(children) >= BURN_S - TICKS_SLACK
    assert after.cpu_s == pytest.approx(parent_alone + sum(children))  # the idle children hold still
    assert after.cpu_s - before.cpu_s >= 2 * (BURN_S - TICKS_SLACK)


def test_children_that_exit_during_the_phase_are_still_counted(family):
    before = server_cpu.sample(family.pid)
    assert family.stdout.readline().strip() == "burnt"
    family.stdin.write("reap\n")
    family.stdin.flush()
    assert family.stdout.readline().strip() == "reaped"

    after = server_cpu.sample(family.pid)

    assert after.pids == (family.pid,)
    assert after.cpu_s - before.cpu_s >= 2 * (BURN_S - TICKS_SLACK)


def test_a_remote_host_is_not_measured_and_says_so():
    pid, reason = server_cpu.locate("http://192.0.2.10:8000")
    meter = server_cpu.Meter(pid, reason)
    meter.start()

    figures = meter.stop(10)

    assert pid is None
    assert figures["server_cpu"] == {"measured": False, "reason": "remote host"}
    assert server_cpu.describe(figures["server_cpu"]) == "Server CPU:    not measured (remote host)"
    assert figures["client_cpu"]["measured"] is True


def test_nothing_listening_is_not_measured():
    pid, reason = server_cpu.locate("http://127.0.0.1:9")
    assert pid is None
    assert reason == "no readable process listens on port 9"


@pytest.mark.django_db(transaction=True)
def test_the_listener_of_a_gunicorn_port_is_its_master_and_the_group_is_master_plus_workers():
    live = LiveGunicorn(WEB_CONCURRENCY="2").start()
    try:
        master = live.process.pid
        workers = {pid for pid, parent in server_cpu._parents().items() if parent == master}

        found, how = server_cpu.locate(live.url)
        meter = server_cpu.Meter(found, how)
        meter.start()
        for _ in range(50):
            with urllib.request.urlopen(f"{live.url}/healthz", timeout=10) as response:  # noqa: S310 - loopback
                assert response.status == 200
        figures = meter.stop(50)["server_cpu"]
    finally:
        live.stop()

    assert found == master
    assert len(workers) == 2
    assert set(figures["pids"]) == {master} | workers
    assert figures["processes"] == 3
    assert figures["cpu_s"] > 0
    assert figures["ms_per_request"] > 0


def test_report_adds_server_and_client_cpu_to_a_load_test_summary(family, tmp_path):
    before, summary = tmp_path / "before.json", tmp_path / "k6_summary.json"
    times_before, times_after = tmp_path / "t0", tmp_path / "t1"
    times_before.write_text("0m0.010s 0m0.000s\n0m1.000s 0m0.500s\n")
    times_after.write_text("0m0.020s 0m0.000s\n0m3.000s 0m1.500s\n")
    assert server_cpu._main(["snapshot", "--pid", str(family.pid), "--out", str(before)]) == 0
    assert family.stdout.readline().strip() == "burnt"
    summary.write_text(json.dumps({"tool": "k6", "requests": 100}))

    args = ["report", "--before", str(before), "--summary", str(summary)]
    assert (
        server_cpu._main([*args, "--client-times-before", str(times_before), "--client-times-after", str(times_after)])
        == 0
    )

    written = json.loads(summary.read_text())
    assert written["server_cpu"]["measured"] is True
    assert written["server_cpu"]["processes"] == 3
    assert written["server_cpu"]["ms_per_request"] >= 10 * 2 * (BURN_S - TICKS_SLACK)
    assert written["client_cpu"]["cpu_s"] == 3.0
    assert written["client_cpu"]["ms_per_request"] == 30.0


def test_report_leaves_a_summary_older_than_the_snapshot_alone(tmp_path):
    summary = tmp_path / "k6_summary.json"
    summary.write_text(json.dumps({"tool": "k6", "requests": 100}))
    before = tmp_path / "before.json"
    before.write_text(json.dumps({"pid": None, "found_by": "remote host", "taken_at": summary.stat().st_mtime + 60}))

    assert server_cpu._main(["report", "--before", str(before), "--summary", str(summary)]) == 1
    assert "server_cpu" not in json.loads(summary.read_text())
