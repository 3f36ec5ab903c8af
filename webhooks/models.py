"""Webhook endpoints, the event outbox and one delivery row per (event, endpoint).

An event row is written in the same database transaction as the change it
describes (``webhooks.outbox.event_emit``), with one pending delivery per
subscribed, enabled endpoint; the worker (``manage.py deliver_webhooks``)
sends due deliveries and records each attempt's outcome on its row.

This app sits below billing: it knows users and organizations, never credit
accounts or pools. Billing passes ids and amounts in.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class EventType(models.TextChoices):
    PING = "ping", "ping (test)"
    CREDITS_BALANCE_LOW = "credits.balance_low", "credits.balance_low"
    CREDITS_DEPLETED = "credits.depleted", "credits.depleted"
    CREDITS_PURCHASED = "credits.purchased", "credits.purchased"
    CREDITS_GRANTED = "credits.granted", "credits.granted"
    ALLOCATION_LOW = "allocation.low", "allocation.low"
    ALLOCATION_DEPLETED = "allocation.depleted", "allocation.depleted"
    CREDIT_POOL_LOW = "credit_pool.low", "credit_pool.low"
    CREDIT_POOL_DEPLETED = "credit_pool.depleted", "credit_pool.depleted"
    CREDIT_POOL_REFRESHED = "credit_pool.refreshed", "credit_pool.refreshed"
    SUBSCRIPTION_RENEWED = "subscription.renewed", "subscription.renewed"
    SUBSCRIPTION_PAST_DUE = "subscription.past_due", "subscription.past_due"
    SUBSCRIPTION_CANCELED = "subscription.canceled", "subscription.canceled"


# What an endpoint may subscribe to: every type but ping, which goes to the one endpoint tested.
SUBSCRIBABLE_EVENTS = [choice for choice in EventType.values if choice != EventType.PING]


class WebhookEndpoint(models.Model):
    """A URL that receives signed events: of one user's own account, or of one organization."""

    class DisabledReason(models.TextChoices):
        NONE = "", "—"
        FAILING = "failing", "Failing for too long"
        MANUAL = "manual", "Disabled by its owner or staff"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    org = models.ForeignKey(
        "orgs.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=255, blank=True, default="")
    events = models.JSONField(default=list, help_text="Event types this endpoint receives.")
    # Kept in the clear: signing needs the key itself. Never shown after creation or rotation.
    secret = models.CharField(max_length=80)
    previous_secret = models.CharField(max_length=80, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    is_enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=8, choices=DisabledReason.choices, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Set by the first failed attempt after a success (or creation), cleared by a success:
    # an endpoint failing since longer than WEBHOOK_DISABLE_AFTER_SECONDS is disabled.
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, org__isnull=True) | Q(user__isnull=True, org__isnull=False),
                name="webhook_endpoint_one_owner",
            ),
            models.CheckConstraint(
                condition=Q(is_enabled=True, disabled_reason="", disabled_at__isnull=True)
                | Q(is_enabled=False, disabled_reason__in=["failing", "manual"], disabled_at__isnull=False),
                name="webhook_endpoint_disabled_has_reason",
            ),
            models.CheckConstraint(
                condition=Q(previous_secret="", previous_secret_expires_at__isnull=True)
                | (~Q(previous_secret="") & Q(previous_secret_expires_at__isnull=False)),
                name="webhook_endpoint_previous_secret_expires",
            ),
        ]
        indexes = [
            # event_emit: the endpoints of the user an event is about (personal scope),
            # and GET /webhooks (the caller's list, by id).
            models.Index(fields=["user", "id"], condition=Q(user__isnull=False), name="idx_webhook_endpoint_user"),
            # event_emit: the endpoints of the org an event is about, and the org's list.
            models.Index(fields=["org", "id"], condition=Q(org__isnull=False), name="idx_webhook_endpoint_org"),
        ]

    def __str__(self) -> str:
        owner = f"user {self.user_id}" if self.user_id else f"org {self.org_id}"
        return f"webhook {self.pk} of {owner}: {self.url}"


class WebhookEvent(models.Model):
    """One event, as sent: ``body`` is the exact JSON every endpoint and every retry receives."""

    id = models.BigAutoField(primary_key=True)
    # The payload's "id" and the webhook-id header: stable across retries and redeliveries.
    uid = models.CharField(max_length=40, unique=True)
    type = models.CharField(max_length=40, choices=EventType.choices)
    # Plain ids, not foreign keys: the outbox is a log, and must not hold deletes of users or orgs back.
    user_id = models.BigIntegerField(null=True, blank=True)
    org_id = models.BigIntegerField(null=True, blank=True)
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user_id__isnull=False) | Q(org_id__isnull=False), name="webhook_event_has_subject"
            ),
        ]
        indexes = [
            # The admin's event list, newest first.
            models.Index(fields=["-created_at", "-id"], name="idx_webhook_event_created"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.uid}"


class WebhookDelivery(models.Model):
    """One event to one endpoint: pending until a 2xx answer (succeeded) or the last retry (failed)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.BigAutoField(primary_key=True)
    # No single-column index: idx_webhook_delivery_endpoint leads with the endpoint.
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # Attempts started. A claim adds one and pushes next_attempt_at one lease ahead, so a
    # worker that dies mid-send leaves the delivery due again after the lease, not lost.
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "succeeded", "failed"]), name="webhook_delivery_status_known"
            ),
            # Pending rows, and only they, have a next attempt: the worker's due scan relies on it.
            models.CheckConstraint(
                condition=Q(status="pending", next_attempt_at__isnull=False)
                | (~Q(status="pending") & Q(next_attempt_at__isnull=True)),
                name="webhook_delivery_pending_iff_next_attempt",
            ),
        ]
        indexes = [
            # The worker's claim: WHERE status = 'pending' AND next_attempt_at <= now
            # ORDER BY next_attempt_at, id ... FOR UPDATE SKIP LOCKED; and the outbox age
            # gauge, MIN(next_attempt_at) of the same rows. Only pending rows are indexed.
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=Q(status="pending"),
                name="idx_webhook_delivery_due",
            ),
            # GET /webhooks/{id}/deliveries: one endpoint's deliveries newest first, keyset-paginated.
            models.Index(fields=["endpoint", "-created_at", "-id"], name="idx_webhook_delivery_endpoint"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} of event {self.event_id} to endpoint {self.endpoint_id} ({self.status})"
