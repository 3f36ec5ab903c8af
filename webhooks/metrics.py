"""Prometheus metrics of the webhook worker, registered like ops_center/metrics.py's.

The worker is its own process: run it with the same ``PROMETHEUS_MULTIPROC_DIR``
as gunicorn and ``/metrics`` adds its samples to the web workers'. Without that
variable they stay in the worker's own registry.
"""

from prometheus_client import Counter, Gauge

DELIVERIES_SENT = Counter(
    "ops_center_webhook_deliveries_sent", "Webhook deliveries answered with a 2xx, by event type.", ["event_type"]
)
DELIVERIES_RETRIED = Counter(
    "ops_center_webhook_deliveries_retried",
    "Failed webhook attempts that were scheduled for another try, by event type.",
    ["event_type"],
)
DELIVERIES_FAILED = Counter(
    "ops_center_webhook_deliveries_failed",
    "Webhook deliveries given up after the last retry (or refused target), by event type.",
    ["event_type"],
)
ENDPOINTS_DISABLED = Counter(
    "ops_center_webhook_endpoints_disabled", "Endpoints disabled after failing for WEBHOOK_DISABLE_AFTER_SECONDS."
)
OUTBOX_AGE = Gauge(
    "ops_center_webhook_outbox_age_seconds",
    "How long the oldest due webhook delivery has been waiting, as the worker last saw it (0 when none).",
    multiprocess_mode="mostrecent",
)
OUTBOX_DUE = Gauge(
    "ops_center_webhook_outbox_due",
    "Webhook deliveries due now, as the worker last saw it.",
    multiprocess_mode="mostrecent",
)
