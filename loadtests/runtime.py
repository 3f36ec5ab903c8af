"""Process-wide state of a Locust run: options, principals, counters and the end-of-run verdict."""

import logging
from pathlib import Path

from locust.runners import WorkerRunner

from billing.demo.keys_csv import read_keys_csv
from loadtests.key_pool import KeyPool
from loadtests.metrics import RunCounters, endpoint_figures, print_report, write_outputs
from loadtests.profile import constant_users_for
from loadtests.schedule import CONSTANT, STAGED, constant_users, staged_duration, stages_for
from loadtests.thresholds import EXIT_SETUP_ERROR, EXIT_THRESHOLD_BREACHED, Observed, Thresholds, breaches, evaluate

logger = logging.getLogger(__name__)
COUNTERS = RunCounters()

_pools: dict[tuple, KeyPool] = {}

THRESHOLD_OPTIONS = {
    # option name -> Thresholds field
    "p95_ms": "p95_ms",
    "p99_ms": "p99_ms",
    "max_failure_rate": "max_failure_rate",
    "balance_p95_ms": "balance_check_p95_ms",
    "balance_p99_ms": "balance_check_p99_ms",
    "max_workflow_mismatches": "max_workflow_mismatches",
}


def add_arguments(parser) -> None:
    group = parser.add_argument_group("Ops-Center load test")
    group.add_argument(
        "--keys",
        dest="keys_file",
        env_var="LOCUST_KEYS_FILE",
        default="var/demo-keys.csv",
        help="seed_demo keys CSV (username,role,org_id,api_key,user_id)",
    )
    group.add_argument(
        "--load-shape",
        choices=[STAGED, CONSTANT],
        default=STAGED,
        env_var="LOCUST_LOAD_SHAPE",
        help="staged: the ramp to 1000 users in profile.json times --scale; constant: --users paced to --rate",
    )
    group.add_argument(
        "--scale",
        type=float,
        default=1.0,
        env_var="LOCUST_SCALE",
        help="staged: multiply the stages' users (and durations, see --time-scale)",
    )
    group.add_argument(
        "--time-scale",
        type=float,
        default=0.0,
        env_var="LOCUST_TIME_SCALE",
        help="staged: multiply the stages' durations; 0 means the same as --scale",
    )
    group.add_argument(
        "--rate",
        type=float,
        default=100.0,
        env_var="LOCUST_RATE",
        help="constant: target requests per second over all users",
    )
    group.add_argument(
        "--results-dir",
        default="results",
        env_var="LOCUST_RESULTS_DIR",
        help="where locust_summary.json and locust_cache_hit_rate.csv go",
    )
    # Set by the shape: the user count the constant rate is shared among, for workers' pacing.
    parser.add_argument("--pacing-users", type=int, default=0, include_in_web_ui=False, help="(set by the shape)")
    defaults = Thresholds.defaults()
    for option, field in THRESHOLD_OPTIONS.items():
        kind = int if field == "max_workflow_mismatches" else float
        group.add_argument(
            f"--{option.replace('_', '-')}",
            type=kind,
            default=getattr(defaults, field),
            env_var=f"LOCUST_{option.upper()}",
            help=f"threshold ({field})",
        )


def on_init(environment) -> None:
    """Constant mode without --users: rate / 5 users, fixed before Locust's headless default of 1 user."""
    options = environment.parsed_options
    if options is None or isinstance(environment.runner, WorkerRunner):
        return
    if options.load_shape == CONSTANT and options.num_users is None:
        options.num_users = constant_users_for(options.rate)


def thresholds_from(options) -> Thresholds:
    return Thresholds.defaults().with_overrides(
        **{field: getattr(options, option, None) for option, field in THRESHOLD_OPTIONS.items()}
    )


def pool_for(environment) -> KeyPool:
    """This process's principals: with N workers (--expect-workers), worker i takes every N-th row from i."""
    options = environment.parsed_options
    partition, partitions = 0, 1
    if isinstance(environment.runner, WorkerRunner):
        partitions = max(1, int(options.expect_workers or 1))
        if environment.runner.worker_index >= partitions:
            logger.warning(
                "worker index %s >= --expect-workers %s: principals overlap with another worker",
                environment.runner.worker_index,
                partitions,
            )
        partition = environment.runner.worker_index % partitions
    key = (options.keys_file, partition, partitions)
    if key not in _pools:
        _pools[key] = KeyPool(read_keys_csv(options.keys_file), partition, partitions)
    return _pools[key]


def on_request(name, response=None, **_kwargs) -> None:
    if response is not None:
        COUNTERS.record_response(name, response.status_code or 0, response.headers.get("X-Cache"))


def finish_run(environment) -> dict | None:
    """Summarise, write the outputs, check the thresholds and set the exit code (master or local only)."""
    if isinstance(environment.runner, WorkerRunner) or environment.runner is None:
        return None
    options = environment.parsed_options
    stats = environment.runner.stats
    total, balance = stats.total, stats.entries.get(("balance_check", "GET"))
    limits = thresholds_from(options)
    verdicts = evaluate(limits, observe(total, balance))
    summary = {
        "tool": "locust",
        "host": environment.host,
        "load_shape": options.load_shape,
        **run_settings(options),
        "duration_s": round((stats.last_request_timestamp or stats.start_time) - stats.start_time, 1),
        "overall": endpoint_figures(total),
        "balance_check_share": (balance.num_requests / total.num_requests) if balance and total.num_requests else None,
        "endpoints": {entry.name: endpoint_figures(entry) for entry in stats.entries.values()},
        "cache_hit_rate": COUNTERS.cache_rows(),
        "statuses": {name: dict(counts) for name, counts in sorted(COUNTERS.statuses.items())},
        "events": dict(COUNTERS.events),
        "thresholds": [vars(verdict) for verdict in verdicts],
        "passed": not breaches(verdicts),
    }
    write_outputs(Path(options.results_dir), summary, COUNTERS, options.html_file)
    print_report(summary)
    if COUNTERS.events["setup_errors"] or environment.runner.exceptions:
        logger.error("users failed to start or tasks raised exceptions; see the log above")
        environment.process_exit_code = EXIT_SETUP_ERROR
    elif breached := breaches(verdicts):
        for verdict in breached:
            logger.error("threshold breached: %s", verdict.describe())
        environment.process_exit_code = EXIT_THRESHOLD_BREACHED
    else:
        # Within the thresholds, a few failed requests (< max failure rate) do not fail the run, as in k6.
        environment.process_exit_code = 0
    return summary


def observe(total, balance) -> Observed:
    def percentile(entry, q):
        return entry.get_response_time_percentile(q) if entry is not None and entry.num_requests else None

    return Observed(
        p95_ms=percentile(total, 0.95),
        p99_ms=percentile(total, 0.99),
        failure_rate=total.fail_ratio,
        balance_check_p95_ms=percentile(balance, 0.95),
        balance_check_p99_ms=percentile(balance, 0.99),
        workflow_mismatches=COUNTERS.events["workflow_mismatches"],
    )


def run_settings(options) -> dict:
    if options.load_shape == CONSTANT:
        return {"target_rps": options.rate, "users": constant_users(options), "run_time_s": options.run_time}
    return {
        "scale": options.scale,
        "time_scale": options.time_scale or options.scale,
        "peak_users": max(stage.target for stage in stages_for(options)),
        "planned_duration_s": staged_duration(options),
    }
