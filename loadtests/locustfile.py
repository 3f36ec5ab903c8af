"""The Ops-Center load test: our three personas, staged ramp and pass/fail thresholds (profile.json).

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --keys var/demo-keys.csv \
        --headless --scale 0.1 --csv results/locust --html results/locust_report.html

Everything lives in the loadtests package; this file wires it to Locust.
"""

import sys
from pathlib import Path

# Locust puts this file's folder on sys.path, not the project's; the package
# imports need its parent (also in the docker-compose mount, /mnt).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from locust import events

from loadtests import runtime
from loadtests.personas import EndUser, OrgAdmin, SystemAdmin
from loadtests.shape import StagedRampShape

__all__ = ["EndUser", "OrgAdmin", "StagedRampShape", "SystemAdmin"]


@events.init_command_line_parser.add_listener
def _add_arguments(parser):
    runtime.add_arguments(parser)


@events.init.add_listener
def _default_constant_users(environment, **kwargs):
    runtime.on_init(environment)


@events.request.add_listener
def _count_cache_and_status(name, response=None, **kwargs):
    runtime.on_request(name, response=response)


@events.test_start.add_listener
def _reset_counters(environment, **kwargs):
    runtime.COUNTERS.reset()


@events.report_to_master.add_listener
def _send_counters(client_id, data):
    data["ops_center"] = runtime.COUNTERS.drain()


@events.worker_report.add_listener
def _add_worker_counters(client_id, data):
    runtime.COUNTERS.merge(data.get("ops_center", {}))


@events.quitting.add_listener
def _verdict(environment, **kwargs):
    runtime.finish_run(environment)
