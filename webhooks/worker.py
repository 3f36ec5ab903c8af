"""The delivery worker behind ``manage.py deliver_webhooks``.

A loop of batches: claim up to ``batch_size`` due deliveries (one short
transaction, ``FOR UPDATE SKIP LOCKED``), send them from a few threads (no
transaction is open during HTTP), record each outcome in its own transaction.
Endpoints are served in parallel, but one endpoint's deliveries go one after
another in the order they fell due, so a receiver sees its events oldest first
(as far as retries allow).
Several workers on one database never send one delivery twice; see
``services.deliveries_claim``. ``stop()`` (SIGTERM, SIGINT) lets the batch in
flight finish and then returns.
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections, connection
from django.db.models import Count, Min
from django.utils import timezone

from webhooks import metrics, services
from webhooks.models import WebhookDelivery
from webhooks.sender import Sender

logger = logging.getLogger(__name__)
# Seconds between two updates of the outbox gauges while busy (every idle loop updates them too).
OBSERVE_EVERY = 5.0


class Worker:
    def __init__(self, *, batch_size: int = 20, concurrency: int = 8, poll_interval: float = 1.0, sender=None):
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.sender = sender or Sender()
        self._stop = threading.Event()
        self._observed = 0.0

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, *, once: bool = False) -> int:
        """Deliver until stopped (or, with ``once``, until nothing is due); returns the attempts made."""
        attempts = 0
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="webhook-send") as pool:
            while not self._stop.is_set():
                if not connection.in_atomic_block:  # (a test's transaction) never close it
                    close_old_connections()
                made = self.run_batch(pool)
                attempts += made
                if made == 0 or time.monotonic() - self._observed > OBSERVE_EVERY:
                    self.observe_outbox()
                if made == 0:
                    if once:
                        break
                    self._stop.wait(self.poll_interval)
        self.sender.close()
        return attempts

    def run_batch(self, pool: ThreadPoolExecutor) -> int:
        ids = services.deliveries_claim(limit=self.batch_size)
        if not ids:
            return 0
        claimed = WebhookDelivery.objects.filter(id__in=ids).select_related("event", "endpoint").in_bulk()
        by_endpoint: dict[int, list[WebhookDelivery]] = {}
        for delivery_id in ids:  # the claim's order: next_attempt_at, then id
            delivery = claimed[delivery_id]
            by_endpoint.setdefault(delivery.endpoint_id, []).append(delivery)
        for sent in pool.map(self._send_in_order, by_endpoint.values()):
            self._record(sent)
        return len(ids)

    def _send_in_order(self, deliveries: list[WebhookDelivery]) -> list[tuple[WebhookDelivery, services.Outcome]]:
        return [(delivery, self._send(delivery)) for delivery in deliveries]

    def _record(self, sent: list[tuple[WebhookDelivery, services.Outcome]]) -> None:
        for delivery, outcome in sent:
            try:
                services.delivery_record(delivery=delivery, outcome=outcome)
            except Exception:  # one bad row must not stop the others; its lease makes it due again
                logger.exception("recording webhook delivery %s failed", delivery.pk)
            logger.info(
                "webhook delivery %s event %s to endpoint %s attempt %s: %s %s",
                delivery.pk,
                delivery.event.uid,
                delivery.endpoint_id,
                delivery.attempts,
                outcome.status_code,
                outcome.error,
            )

    def _send(self, delivery: WebhookDelivery) -> services.Outcome:
        try:
            return self.sender.send(
                url=delivery.endpoint.url,
                msg_id=delivery.event.uid,
                body=delivery.event.body.encode(),
                secrets_in_use=services.signing_secrets(delivery.endpoint),
            )
        except Exception as exc:  # a bug must become a failed attempt, not a dead worker
            logger.exception("sending webhook delivery %s failed", delivery.pk)
            return services.Outcome(status_code=None, duration_ms=0, error=f"{type(exc).__name__}: {exc}"[:255])

    def observe_outbox(self) -> None:
        self._observed = time.monotonic()
        now = timezone.now()
        due = services.due_deliveries(now=now).aggregate(oldest=Min("next_attempt_at"), count=Count("id"))
        oldest = due["oldest"]
        metrics.OUTBOX_AGE.set((now - oldest).total_seconds() if oldest else 0)
        metrics.OUTBOX_DUE.set(due["count"])
