"""The webhook settings, with their defaults (config/settings.py reads them from the environment)."""

from django.conf import settings

# Seconds between attempts: 13 attempts over about 3 days and 4 hours, each delay a little
# longer (0 to 10 % more, at random) so retries of one outage do not arrive in lockstep.
DEFAULT_RETRY_SCHEDULE = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 86400)


def allow_private_targets() -> bool:
    """http:// and loopback, private, link-local and metadata addresses allowed (development, tests)."""
    return bool(getattr(settings, "WEBHOOK_ALLOW_PRIVATE_TARGETS", False))


def retry_schedule() -> tuple[int, ...]:
    schedule = getattr(settings, "WEBHOOK_RETRY_SCHEDULE", None) or DEFAULT_RETRY_SCHEDULE
    if isinstance(schedule, str):
        schedule = [part for part in schedule.split(",") if part.strip()]
    return tuple(max(0, int(float(seconds))) for seconds in schedule)


def timeout_seconds() -> float:
    return float(getattr(settings, "WEBHOOK_TIMEOUT_SECONDS", 5.0))


def disable_after_seconds() -> float:
    return float(getattr(settings, "WEBHOOK_DISABLE_AFTER_SECONDS", 5 * 24 * 3600))


def secret_overlap_seconds() -> float:
    return float(getattr(settings, "WEBHOOK_SECRET_OVERLAP_SECONDS", 24 * 3600))


def max_endpoints() -> int:
    return int(getattr(settings, "WEBHOOK_MAX_ENDPOINTS", 20))


# A claimed delivery is due again after this long unless its worker recorded an outcome
# (a worker that died mid-send): well above the send timeout.
CLAIM_LEASE_SECONDS = 60
