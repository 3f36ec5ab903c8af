"""The Locust load shape: the staged ramp of profile.json, or a constant rate (see schedule.py)."""

from locust import LoadTestShape

from loadtests.schedule import CONSTANT, constant_users, shape_tick


class StagedRampShape(LoadTestShape):
    """--load-shape staged: profile.json's stages times --scale; constant: --users held for --run-time.

    --run-time, if given, cuts either short. use_common_options lets it read
    --users, --spawn-rate and --run-time (and the web UI offer them).
    """

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        if self.runner is None or self.runner.environment.parsed_options is None:
            raise RuntimeError("Locust calls tick only on a runner started with parsed options")
        options = self.runner.environment.parsed_options
        if options.load_shape == CONSTANT:
            # Custom options travel to workers with every spawn message; --users does not.
            options.pacing_users = constant_users(options)
        return shape_tick(options, self.get_run_time())
