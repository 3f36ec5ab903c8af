"""When users run and how fast: the staged and constant modes, free of Locust so tests can import it.

Locust is a closed model: a user sends its next request only after the last
answer, so a slow server quietly receives less load. The constant mode
approximates an open model with pacing: each user is given a share of the
target rate and schedules its requests on a fixed timetable, so response time
does not lower the rate as long as each user keeps up with its interval
(200 ms by default: --users defaults to rate / 5). Beyond that the rate drops,
which the summary shows as achieved RPS below the target. k6's
constant-arrival-rate executor (k6_load_test.js) is the true open model and
the one used for the sustained-rate measurements.
"""

import time

from loadtests.profile import constant_users_for, scaled_stages, target_at, total_duration

STAGED, CONSTANT = "staged", "constant"
# A user that fell behind (a slow answer, a pause) may catch up at most this
# much of its timetable in a burst; older debt is forgiven, as a real client
# population would not all retry at once.
MAX_BACKLOG_S = 1.0


def shape_tick(options, elapsed_s: float) -> tuple[int, float] | None:
    """(users, spawn rate) at `elapsed_s` into the run, or None to end it."""
    # Locust applies --run-time only after a shape ends, so the shape honours it itself.
    if options.run_time and elapsed_s >= options.run_time:
        return None
    if options.load_shape == CONSTANT:
        users = constant_users(options)
        # All users within a second (unless --spawn-rate is higher): the rate is the point, and each
        # user's pacing spreads its requests out anyway.
        return users, max(float(options.spawn_rate or 0), float(users))
    return target_at(stages_for(options), elapsed_s)


def constant_users(options) -> int:
    return options.num_users or constant_users_for(options.rate)


def stages_for(options):
    # --time-scale 0 (the default) means "the same as --scale".
    return scaled_stages(options.scale, options.time_scale or None)


def staged_duration(options) -> float:
    return total_duration(stages_for(options))


class Pacer:
    """A user's timetable in constant mode: one slot of `interval_s` per request it sent."""

    def __init__(self, interval_s: float, clock=time.monotonic):
        self.interval_s = interval_s
        self.clock = clock
        self.due = clock()

    def wait_after(self, requests_sent: int) -> float:
        now = self.clock()
        # A task that sent nothing still takes a slot, or the user would spin.
        self.due = max(self.due + max(1, requests_sent) * self.interval_s, now - MAX_BACKLOG_S)
        return max(0.0, self.due - now)
