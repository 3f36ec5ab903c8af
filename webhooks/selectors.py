"""Reads: an owner's endpoints and an endpoint's delivery log."""

from django.db.models import F, Q, QuerySet

from ops_center.api.pagination import keyset_page
from ops_center.errors import NotFound
from webhooks.models import WebhookDelivery, WebhookEndpoint


class EndpointNotFound(NotFound):
    default_code = "webhook_not_found"
    default_message = "No such webhook endpoint."


class DeliveryNotFound(NotFound):
    default_code = "webhook_delivery_not_found"
    default_message = "No such delivery of this webhook endpoint."


def owned(*, user_id: int | None, org_id: int | None) -> QuerySet[WebhookEndpoint]:
    """An org's endpoints, or a user's own (personal) ones."""
    owner = Q(org_id=org_id) if org_id is not None else Q(user_id=user_id, org__isnull=True)
    return WebhookEndpoint.objects.filter(owner)


def endpoints_of(*, user_id: int | None, org_id: int | None) -> list[WebhookEndpoint]:
    return list(owned(user_id=user_id, org_id=org_id).order_by("id"))


def endpoint_of(*, endpoint_id: int, user_id: int | None, org_id: int | None) -> WebhookEndpoint:
    endpoint = owned(user_id=user_id, org_id=org_id).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise EndpointNotFound(details={"id": endpoint_id})
    return endpoint


def delivery_of(*, endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery:
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id, endpoint=endpoint).first()
    if delivery is None:
        raise DeliveryNotFound(details={"id": delivery_id})
    return delivery


DELIVERY_FIELDS = (
    "id",
    "event_id",
    "status",
    "attempts",
    "response_status_code",
    "duration_ms",
    "error",
    "next_attempt_at",
    "last_attempt_at",
    "created_at",
)


def deliveries_page(*, endpoint: WebhookEndpoint, cursor: str | None, limit: int) -> dict:
    """One endpoint's deliveries newest first, one query per page (idx_webhook_delivery_endpoint)."""
    rows = WebhookDelivery.objects.filter(endpoint=endpoint).values(
        *DELIVERY_FIELDS, event_uid=F("event__uid"), event_type=F("event__type")
    )
    page, next_cursor = keyset_page(rows, cursor=cursor, limit=limit, scope=f"webhooks.deliveries:{endpoint.pk}")
    return {"results": page, "next_cursor": next_cursor}
