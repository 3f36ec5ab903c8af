"""Unit tests of the load profile, the shape's schedule, pacing, principals, thresholds and counters.

Nothing here imports Locust: it monkey-patches the standard library with
gevent on import, which must never happen inside the pytest process. The one
test of the Locust shape class itself runs in a subprocess.
"""

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from billing.demo.keys_csv import DemoKey, KeysFileError, read_keys_csv
from loadtests.key_pool import KeyPool
from loadtests.metrics import RunCounters
from loadtests.profile import Thresholds, scaled_stages
from loadtests.schedule import CONSTANT, STAGED, Pacer, shape_tick
from loadtests.tests.support import PROJECT_DIR
from loadtests.thresholds import Observed, breaches, evaluate

# (seconds into the run, users): the staged ramp 0→100 in 30 s, 100 for 1 min, →500 in 30 s,
# →1000 in 30 s, 1000 for 1 min, →0 in 30 s.
STAGED_RAMP_AT_SCALE_1 = [
    (0, 0),
    (15, 50),
    (29.9, 100),
    (30, 100),
    (89.9, 100),
    (105, 300),
    (120, 500),
    (135, 750),
    (150, 1000),
    (209.9, 1000),
    (225, 500),
    (239.9, 3),
]


def options(**overrides):
    values = dict(load_shape=STAGED, scale=1.0, time_scale=0.0, run_time=None, num_users=None, spawn_rate=1.0)
    return SimpleNamespace(**{**values, **overrides})


@pytest.mark.parametrize(("elapsed", "users"), STAGED_RAMP_AT_SCALE_1)
def test_the_shape_follows_the_staged_ramp_at_scale_1(elapsed, users):
    assert shape_tick(options(), elapsed)[0] == users


def test_the_shape_ramps_at_each_stage_slope_and_ends_after_four_minutes():
    rates = [round(shape_tick(options(), elapsed)[1], 2) for elapsed in (10, 60, 100, 130, 180, 230)]
    assert rates == [3.33, 1.0, 13.33, 16.67, 1.0, 33.33]
    assert shape_tick(options(), 240) is None


def test_scale_shrinks_users_and_durations():
    stages = scaled_stages(0.1)
    assert [(stage.duration_s, stage.target) for stage in stages] == [
        (3, 10),
        (6, 10),
        (3, 50),
        (3, 100),
        (6, 100),
        (3, 0),
    ]
    assert shape_tick(options(scale=0.1), 27) is None
    # A separate time scale keeps the ramp's full four minutes with a tenth of the users.
    assert shape_tick(options(scale=0.1, time_scale=1.0), 200)[0] == 100


def test_run_time_cuts_either_shape_short():
    assert shape_tick(options(run_time=60), 59)[0] == 100
    assert shape_tick(options(run_time=60), 60) is None
    constant = options(load_shape=CONSTANT, rate=200.0, num_users=None, run_time=30)
    assert shape_tick(constant, 10) == (40, 40.0)  # rate / 5 users, all within a second
    assert shape_tick(constant, 30) is None


def test_the_locust_shape_class_ticks_the_same_schedule():
    probe = textwrap.dedent(
        """
        from types import SimpleNamespace
        from loadtests.shape import StagedRampShape
        shape = StagedRampShape()
        options = SimpleNamespace(load_shape="staged", scale=1.0, time_scale=0.0, run_time=None)
        shape.runner = SimpleNamespace(environment=SimpleNamespace(parsed_options=options))
        for elapsed in (15, 135, 240):
            shape.get_run_time = lambda elapsed=elapsed: elapsed
            print(shape.tick())
        """
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:3] == ["(50, 3.3333333333333335)", "(750, 16.666666666666668)", "None"]


def test_pacing_keeps_the_timetable_and_forgives_old_debt():
    now = [100.0]
    pacer = Pacer(interval_s=0.5, clock=lambda: now[0])
    assert pacer.wait_after(1) == 0.5
    now[0] += 0.1  # the request took 100 ms: wait out the rest of the slot
    assert pacer.wait_after(1) == pytest.approx(0.9)
    now[0] += 10  # a long stall: catch up at most one second's backlog
    assert pacer.wait_after(2) == 0
    assert pacer.due == pytest.approx(now[0] - 1.0)
    assert Pacer(0.5, clock=lambda: 0.0).wait_after(0) == 0.5  # a task that sent nothing still takes a slot


def keys_file(tmp_path, rows):
    path = tmp_path / "keys.csv"
    path.write_text("username,role,org_id,api_key\n" + "".join(f"{row}\n" for row in rows))
    return path


def test_principals_are_exclusive_while_there_are_enough_then_shared(tmp_path):
    pool = KeyPool(read_keys_csv(keys_file(tmp_path, ["u1,user,,k1", "u2,user,,k2", "a1,org_admin,7,k3"])))
    first, second = pool.lease("user"), pool.lease("user")
    assert (first.key.username, second.key.username) == ("u1", "u2")
    assert first.exclusive
    assert second.exclusive
    third = pool.lease("user")
    assert third is first
    assert not first.exclusive
    pool.release(third)
    assert first.exclusive
    assert first.leases == 2  # a workflow that started before the share can tell
    admin = pool.lease("org_admin")
    assert (admin.key.org_id, admin.key.auth_header) == (7, {"Authorization": "Bearer k3"})
    with pytest.raises(KeysFileError, match="no principal with role 'staff'"):
        pool.lease("staff")


def test_workers_take_disjoint_slices_of_the_keys():
    keys = [DemoKey(f"u{i}", "user", None, f"k{i}") for i in range(6)]
    slices = [KeyPool(keys, partition=i, partitions=3).by_role["user"] for i in range(3)]
    assert [[leased.key.username for leased in part] for part in slices] == [["u0", "u3"], ["u1", "u4"], ["u2", "u5"]]


def test_a_missing_keys_file_says_how_to_make_one(tmp_path):
    with pytest.raises(KeysFileError, match=r"seed_demo .* --keys-out"):
        read_keys_csv(tmp_path / "absent.csv")


def test_thresholds_are_the_report_ones_and_name_each_breach():
    limits = Thresholds.defaults()
    assert (limits.p95_ms, limits.p99_ms, limits.max_failure_rate) == (100, 500, 0.01)
    assert (limits.balance_check_p95_ms, limits.balance_check_p99_ms) == (50, 100)
    fine = Observed(
        p95_ms=40, p99_ms=90, failure_rate=0.001, balance_check_p95_ms=8, balance_check_p99_ms=20, workflow_mismatches=0
    )
    assert breaches(evaluate(limits, fine)) == []
    slow = Observed(
        p95_ms=120,
        p99_ms=90,
        failure_rate=0.02,
        balance_check_p95_ms=None,
        balance_check_p99_ms=None,
        workflow_mismatches=1,
    )
    assert [verdict.name for verdict in breaches(evaluate(limits, slow))] == [
        "http_req_duration p(95)<100",
        "http_req_failed rate<0.01",
        "workflow_mismatches count<=0",
    ]
    stricter = limits.with_overrides(p95_ms=10, p99_ms=None)
    assert (stricter.p95_ms, stricter.p99_ms) == (10, 500)


def test_counters_add_up_across_workers():
    master, worker = RunCounters(), RunCounters()
    worker.record_response("balance_check", 200, "HIT")
    worker.record_response("balance_check", 200, "MISS")
    worker.record_response("subscriptions", 200, None)
    worker.count("workflow_verified")
    master.merge(worker.drain())
    master.record_response("balance_check", 200, "HIT")
    assert worker.cache_rows()[-1]["hits"] == 0  # drained
    rows = {row["name"]: row for row in master.cache_rows()}
    assert rows["balance_check"] == {"name": "balance_check", "hits": 2, "misses": 1, "hit_rate": 2 / 3}
    assert "subscriptions" not in rows  # no X-Cache header: not a cached endpoint
    assert rows["Aggregated"]["hit_rate"] == 2 / 3
    assert master.statuses["subscriptions"] == {"200": 1}
    assert master.events["workflow_verified"] == 1
