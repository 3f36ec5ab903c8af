"""Writes: endpoints, secrets, redeliveries, and the worker's claims and outcomes. Each is one transaction."""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from ops_center.errors import ApplicationError, Conflict
from webhooks import conf, metrics, outbox, signing, targets
from webhooks.models import EventType, WebhookDelivery, WebhookEndpoint


class InvalidTarget(ApplicationError):
    default_code = "invalid_webhook_url"
    default_message = "This URL cannot receive webhooks."


class TooManyEndpoints(Conflict):
    default_code = "too_many_webhook_endpoints"
    default_message = "This account or organization has as many webhook endpoints as it may."


class EndpointDisabled(Conflict):
    default_code = "webhook_endpoint_disabled"
    default_message = "This endpoint is disabled; enable it first (PATCH enabled=true)."


def _checked_url(url: str) -> str:
    try:
        targets.check(url)
    except targets.TargetRefused as exc:
        raise InvalidTarget(str(exc), details={"url": [str(exc)]}) from exc
    return url


def _owner_filter(*, user_id: int | None, org_id: int | None) -> Q:
    return Q(org_id=org_id) if org_id is not None else Q(user_id=user_id, org__isnull=True)


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    secret: str


@transaction.atomic
def endpoint_create(
    *, user_id: int | None = None, org_id: int | None = None, url: str, events: list[str], description: str = ""
) -> CreatedEndpoint:
    """Register an endpoint of a user's own account or of an org; the secret is returned once."""
    if (user_id is None) == (org_id is None):
        raise ValueError("an endpoint belongs to a user or to an org")
    _checked_url(url)
    if WebhookEndpoint.objects.filter(_owner_filter(user_id=user_id, org_id=org_id)).count() >= conf.max_endpoints():
        raise TooManyEndpoints(details={"max": conf.max_endpoints()})
    secret = signing.new_secret()
    endpoint = WebhookEndpoint.objects.create(
        user_id=user_id,
        org_id=org_id,
        url=url,
        events=sorted(set(events)),
        description=description,
        secret=secret,
    )
    return CreatedEndpoint(endpoint=endpoint, secret=secret)


@transaction.atomic
def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: list[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if url is not None and url != endpoint.url:
        endpoint.url = _checked_url(url)
    if events is not None:
        endpoint.events = sorted(set(events))
    if description is not None:
        endpoint.description = description
    if enabled is True and not endpoint.is_enabled:
        endpoint.is_enabled, endpoint.disabled_reason, endpoint.disabled_at = True, "", None
        endpoint.failing_since = None
    elif enabled is False and endpoint.is_enabled:
        _disable(endpoint, reason=WebhookEndpoint.DisabledReason.MANUAL)
    endpoint.save()
    return endpoint


def _disable(endpoint: WebhookEndpoint, *, reason: str) -> None:
    """Disable (caller saves) and give up its pending deliveries, so the due scan never passes over them."""
    now = timezone.now()
    endpoint.is_enabled, endpoint.disabled_reason, endpoint.disabled_at = False, reason, now
    WebhookDelivery.objects.filter(endpoint_id=endpoint.pk, status=WebhookDelivery.Status.PENDING).update(
        status=WebhookDelivery.Status.FAILED, next_attempt_at=None, error="endpoint disabled", updated_at=now
    )


@transaction.atomic
def endpoint_disable(*, endpoint: WebhookEndpoint, reason: str = WebhookEndpoint.DisabledReason.MANUAL) -> None:
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if endpoint.is_enabled:
        _disable(endpoint, reason=reason)
        endpoint.save()


@transaction.atomic
def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint and its delivery log; the events stay."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()


@transaction.atomic
def endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> tuple[WebhookEndpoint, str]:
    """A new secret; the current one stays valid (and signs too) for WEBHOOK_SECRET_OVERLAP_SECONDS."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    secret = signing.new_secret()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = timezone.now() + timedelta(seconds=conf.secret_overlap_seconds())
    endpoint.secret = secret
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    return endpoint, secret


def signing_secrets(endpoint: WebhookEndpoint, *, now: datetime | None = None) -> list[str]:
    now = now or timezone.now()
    current = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now:
        current.append(endpoint.previous_secret)
    return current


@transaction.atomic
def endpoint_ping(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a ``ping`` event to this endpoint alone."""
    if not endpoint.is_enabled:
        raise EndpointDisabled(details={"endpoint_id": endpoint.pk})
    event = outbox.event_emit(
        type=EventType.PING,
        user_id=endpoint.user_id,
        org_id=endpoint.org_id,
        data={"endpoint_id": endpoint.pk, "message": "ping"},
        endpoint_ids=[endpoint.pk],
    )
    if event is None:  # event_emit writes the event whenever it has an endpoint to send it to
        raise RuntimeError(f"no ping event was written for webhook endpoint {endpoint.pk}")
    return event.deliveries.get()


@transaction.atomic
def delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the delivery's event to its endpoint again, as a new delivery with the same webhook-id."""
    if not delivery.endpoint.is_enabled:
        raise EndpointDisabled(details={"endpoint_id": delivery.endpoint_id})
    now = timezone.now()
    return WebhookDelivery.objects.create(
        endpoint_id=delivery.endpoint_id, event_id=delivery.event_id, next_attempt_at=now, created_at=now
    )


# -- The worker ----------------------------------------------------------------


def due_deliveries(*, now: datetime) -> QuerySet[WebhookDelivery]:
    """Pending deliveries whose time has come, oldest first: a range scan of idx_webhook_delivery_due."""
    return WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now, endpoint__is_enabled=True
    ).order_by("next_attempt_at", "id")


@transaction.atomic
def deliveries_claim(*, limit: int) -> list[int]:
    """Claim up to ``limit`` due deliveries for this worker: count the attempt and lease them.

    ``FOR UPDATE SKIP LOCKED`` passes over rows another worker is claiming, and the
    lease (next_attempt_at pushed CLAIM_LEASE_SECONDS ahead) keeps them from being
    due again once this transaction commits, so two workers never send one delivery.
    If this worker dies before recording an outcome, the delivery is due again after
    the lease. (SQLite has no row locks; its writers take turns, which serves the same.)
    """
    now = timezone.now()
    ids = list(
        due_deliveries(now=now).select_for_update(skip_locked=True, of=("self",)).values_list("id", flat=True)[:limit]
    )
    if ids:
        WebhookDelivery.objects.filter(id__in=ids).update(
            attempts=F("attempts") + 1,
            next_attempt_at=now + timedelta(seconds=conf.CLAIM_LEASE_SECONDS),
            updated_at=now,
        )
    return ids


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    duration_ms: int
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_delay(attempts: int) -> float | None:
    """Seconds before the next attempt after ``attempts`` failed ones; None when the schedule is spent."""
    schedule = conf.retry_schedule()
    if attempts > len(schedule):
        return None
    return schedule[attempts - 1] * (1 + random.uniform(0, 0.1))  # noqa: S311 - jitter, not security


@transaction.atomic
def delivery_record(*, delivery: WebhookDelivery, outcome: Outcome, final: bool = False) -> WebhookDelivery:
    """Record one attempt's outcome: succeeded, retry later, or failed for good (``final``: no retry)."""
    now = timezone.now()
    delivery.last_attempt_at = now
    delivery.response_status_code = outcome.status_code
    delivery.duration_ms = outcome.duration_ms
    delivery.error = outcome.error[:255]
    event_type = delivery.event.type
    if outcome.ok:
        delivery.status, delivery.next_attempt_at = WebhookDelivery.Status.SUCCEEDED, None
        WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, failing_since__isnull=False).update(
            failing_since=None, updated_at=now
        )
        transaction.on_commit(metrics.DELIVERIES_SENT.labels(event_type).inc)
    else:
        disabled = _endpoint_failed(delivery.endpoint_id, now=now)
        delay = None if final or disabled else retry_delay(delivery.attempts)
        if delay is None:
            delivery.status, delivery.next_attempt_at = WebhookDelivery.Status.FAILED, None
            if disabled:
                delivery.error = f"{delivery.error} (endpoint disabled: failing too long)"[:255]
            transaction.on_commit(metrics.DELIVERIES_FAILED.labels(event_type).inc)
        else:
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            transaction.on_commit(metrics.DELIVERIES_RETRIED.labels(event_type).inc)
    delivery.save(
        update_fields=[
            "status",
            "next_attempt_at",
            "last_attempt_at",
            "response_status_code",
            "duration_ms",
            "error",
            "updated_at",
        ]
    )
    return delivery


def _endpoint_failed(endpoint_id: int, *, now: datetime) -> bool:
    """Start the endpoint's failing streak, or disable it once the streak is WEBHOOK_DISABLE_AFTER_SECONDS
    long; True when it was disabled now."""
    started = WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=True).update(
        failing_since=now, updated_at=now
    )
    if started:
        return False
    cutoff = now - timedelta(seconds=conf.disable_after_seconds())
    endpoint = (
        WebhookEndpoint.objects.select_for_update()
        .filter(pk=endpoint_id, is_enabled=True, failing_since__lte=cutoff)
        .first()
    )
    if endpoint is not None:
        _disable(endpoint, reason=WebhookEndpoint.DisabledReason.FAILING)
        endpoint.save()
        transaction.on_commit(metrics.ENDPOINTS_DISABLED.inc)
        return True
    return False
