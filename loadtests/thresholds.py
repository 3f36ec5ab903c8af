"""Our pass/fail rules (p95 and p99 latency, failure rate, the balance check's own p95 and p99, and
wrong balances after a purchase), checked on a finished run's figures.

Named as k6 names them, so a breach reads the same whichever tool found it.
"""

from dataclasses import dataclass

from loadtests.profile import Thresholds

# Exit codes of a Locust run (k6 exits 99 when a threshold is crossed).
EXIT_SETUP_ERROR, EXIT_THRESHOLD_BREACHED = 2, 3


@dataclass(frozen=True)
class Observed:
    p95_ms: float | None
    p99_ms: float | None
    failure_rate: float
    balance_check_p95_ms: float | None
    balance_check_p99_ms: float | None
    workflow_mismatches: int


@dataclass(frozen=True)
class Verdict:
    name: str
    observed: float | None
    limit: float
    passed: bool

    def describe(self) -> str:
        seen = "no requests" if self.observed is None else f"{self.observed:g}"
        return f"{self.name}: observed {seen} ({'ok' if self.passed else 'BREACHED'})"


def _below(name: str, observed: float | None, limit: float) -> Verdict:
    # A metric with no samples (e.g. no balance checks in a staff-only run) cannot breach.
    return Verdict(name, observed, limit, observed is None or observed < limit)


def evaluate(limits: Thresholds, observed: Observed) -> list[Verdict]:
    return [
        _below(f"http_req_duration p(95)<{limits.p95_ms:g}", observed.p95_ms, limits.p95_ms),
        _below(f"http_req_duration p(99)<{limits.p99_ms:g}", observed.p99_ms, limits.p99_ms),
        _below(f"http_req_failed rate<{limits.max_failure_rate:g}", observed.failure_rate, limits.max_failure_rate),
        _below(
            f"balance_check_duration p(95)<{limits.balance_check_p95_ms:g}",
            observed.balance_check_p95_ms,
            limits.balance_check_p95_ms,
        ),
        _below(
            f"balance_check_duration p(99)<{limits.balance_check_p99_ms:g}",
            observed.balance_check_p99_ms,
            limits.balance_check_p99_ms,
        ),
        Verdict(
            f"workflow_mismatches count<={limits.max_workflow_mismatches}",
            observed.workflow_mismatches,
            limits.max_workflow_mismatches,
            observed.workflow_mismatches <= limits.max_workflow_mismatches,
        ),
    ]


def breaches(verdicts: list[Verdict]) -> list[Verdict]:
    return [verdict for verdict in verdicts if not verdict.passed]
