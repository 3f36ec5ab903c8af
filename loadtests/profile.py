"""The load profile shared with k6: stages, thresholds and weights from profile.json.

Kept free of Locust and Django imports so the unit tests and the k6 side can
rely on it without either.
"""

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

PROFILE_PATH = Path(__file__).with_name("profile.json")
PROFILE = json.loads(PROFILE_PATH.read_text())


@dataclass(frozen=True)
class Stage:
    duration_s: float
    target: int


@dataclass(frozen=True)
class Thresholds:
    p95_ms: float
    p99_ms: float
    max_failure_rate: float
    balance_check_p95_ms: float
    balance_check_p99_ms: float
    max_workflow_mismatches: int

    @classmethod
    def defaults(cls) -> "Thresholds":
        return cls(**PROFILE["thresholds"])

    def with_overrides(self, **overrides) -> "Thresholds":
        """Replace the values given (None keeps the default)."""
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        values.update({name: value for name, value in overrides.items() if value is not None})
        return Thresholds(**values)


def staged_ramp() -> list[Stage]:
    return [Stage(**stage) for stage in PROFILE["stages"]]


def scaled_stages(scale: float = 1.0, time_scale: float | None = None) -> list[Stage]:
    """The staged ramp with users times `scale` and durations times `time_scale` (default: `scale`).

    A ramp towards a non-zero target keeps at least one user, so a tiny scale is
    still a miniature of the same curve rather than an empty run.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    time_scale = scale if time_scale is None else time_scale
    if time_scale <= 0:
        raise ValueError(f"time scale must be positive, got {time_scale}")
    return [
        Stage(
            duration_s=stage.duration_s * time_scale,
            target=max(1, round(stage.target * scale)) if stage.target else 0,
        )
        for stage in staged_ramp()
    ]


def total_duration(stages: list[Stage]) -> float:
    return sum(stage.duration_s for stage in stages)


def target_at(stages: list[Stage], elapsed_s: float) -> tuple[int, float] | None:
    """Users and spawn rate at `elapsed_s`, interpolated linearly inside a stage as k6's ramping-vus does.

    None once the last stage is over. The spawn rate is the stage's own slope
    (users per second), so Locust ramps at the speed k6 would.
    """
    start_users, start_time = 0, 0.0
    for stage in stages:
        end_time = start_time + stage.duration_s
        if elapsed_s < end_time:
            fraction = (elapsed_s - start_time) / stage.duration_s
            users = round(start_users + (stage.target - start_users) * fraction)
            slope = abs(stage.target - start_users) / stage.duration_s
            return users, max(slope, 1.0)
        start_users, start_time = stage.target, end_time
    return None


def persona_weights() -> dict[str, int]:
    return {name: persona["weight"] for name, persona in PROFILE["personas"].items()}


def task_weights(persona: str) -> dict[str, int]:
    return dict(PROFILE["personas"][persona]["tasks"])


def persona_role(persona: str) -> str:
    return PROFILE["personas"][persona]["role"]


def think_time() -> tuple[float, float]:
    return PROFILE["think_time_s"]["min"], PROFILE["think_time_s"]["max"]


def constant_users_for(rate: float, per_user_rps: float = 5.0) -> int:
    """Users for a constant-rate run: each paced at `per_user_rps`, i.e. 200 ms between its requests."""
    return max(1, math.ceil(rate / per_user_rps))
