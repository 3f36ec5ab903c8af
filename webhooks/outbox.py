"""The transactional outbox: callers emit events inside the transaction of the change.

``event_emit`` writes the event and one pending delivery per subscribed, enabled
endpoint on the caller's connection, inside the caller's transaction: a change
that rolls back emits nothing, and one that commits always has its deliveries
waiting for the worker. An event nobody subscribes to is not written at all, so
it costs one indexed read of the subject's endpoints and nothing else.

Who receives what: an event about a user (``user_id``) goes to that user's own
endpoints, an event about an org (``org_id``) to the org's; one about both (a
member's allocation) to both.
"""

import datetime
import uuid
from collections.abc import Collection
from decimal import Decimal
from typing import Any

import orjson
from django.db.models import Q
from django.utils import timezone

from webhooks.models import EventType, WebhookDelivery, WebhookEndpoint, WebhookEvent

AMOUNT_PLACES = Decimal("0.0001")


def amount(value: Decimal | None) -> str | None:
    """An amount in a payload: a string with 4 decimal places."""
    return None if value is None else f"{Decimal(value).quantize(AMOUNT_PLACES):f}"


def _plain(value: object) -> object:
    if isinstance(value, Decimal):
        return amount(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def new_event_uid() -> str:
    return f"evt_{uuid.uuid4().hex}"


def build_body(
    *, uid: str, type: str, created_at: datetime.datetime, user_id: int | None, org_id: int | None, data: dict[str, Any]
) -> str:
    payload = {
        "id": uid,
        "type": type,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
        "user_id": user_id,
        "org_id": org_id,
        "data": _plain(data),
    }
    return orjson.dumps(payload).decode()


def subscribed_endpoint_ids(*, type: str, user_id: int | None, org_id: int | None) -> list[int]:
    owners = Q()
    if user_id is not None:
        owners |= Q(user_id=user_id)
    if org_id is not None:
        owners |= Q(org_id=org_id)
    if not owners:
        return []
    # A handful of rows per owner; the events list is checked here, the same way on both databases.
    rows = WebhookEndpoint.objects.filter(owners, is_enabled=True).values_list("id", "events")
    return [endpoint_id for endpoint_id, events in rows if type in events]


def event_emit(
    *,
    type: str,
    user_id: int | None = None,
    org_id: int | None = None,
    data: dict[str, Any],
    endpoint_ids: Collection[int] | None = None,
) -> WebhookEvent | None:
    """Record an event and its deliveries in the current transaction; None when nobody subscribes.

    ``endpoint_ids`` sends to those endpoints only (a ping), subscribed or not.
    """
    if type not in EventType.values:
        raise ValueError(f"unknown webhook event type {type!r}")
    if endpoint_ids is None:
        endpoint_ids = subscribed_endpoint_ids(type=type, user_id=user_id, org_id=org_id)
    if not endpoint_ids:
        return None
    now = timezone.now()
    uid = new_event_uid()
    event = WebhookEvent.objects.create(
        uid=uid,
        type=type,
        user_id=user_id,
        org_id=org_id,
        body=build_body(uid=uid, type=type, created_at=now, user_id=user_id, org_id=org_id, data=data),
        created_at=now,
    )
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(endpoint_id=endpoint_id, event=event, next_attempt_at=now, created_at=now)
            for endpoint_id in endpoint_ids
        ]
    )
    return event
