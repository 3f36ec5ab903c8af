"""Webhook endpoints, in two scopes: the caller's own account, and an org's.

Thin views: validate, call one service or selector, render. Each view class is
written once and declared twice below, as ``Own...`` (``/webhooks``) and
``Org...`` (``/org-billing/organizations/{org_id}/webhooks``), so each operation
has its own id and parameters in the schema.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.response import Response
from rest_framework.views import APIView

from ops_center.api.converters import ID_SCHEMA
from ops_center.api.idempotency import run_idempotent
from ops_center.api.schema import IDEMPOTENCY_HEADER, ORG_ID_PATH, error_responses
from webhooks import selectors, services
from webhooks.api import serializers
from webhooks.api.permissions import IsOrgAdminOrStaff

ENDPOINT_ID_PATH = OpenApiParameter(
    name="endpoint_id", type=ID_SCHEMA, location=OpenApiParameter.PATH, description="The webhook endpoint's id."
)
DELIVERY_ID_PATH = OpenApiParameter(
    name="delivery_id", type=ID_SCHEMA, location=OpenApiParameter.PATH, description="The delivery's id."
)
READ_ERRORS = error_responses(400, 401, 403, 404, 503)
WRITE_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503)


def endpoint_out(endpoint) -> dict:
    return {
        "id": endpoint.pk,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": endpoint.events,
        "enabled": endpoint.is_enabled,
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": endpoint.disabled_at,
        "failing_since": endpoint.failing_since,
        "previous_secret_expires_at": endpoint.previous_secret_expires_at,
        "user_id": endpoint.user_id,
        "org_id": endpoint.org_id,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }


def delivery_out(delivery) -> dict:
    return {
        "id": delivery.pk,
        "event_id": delivery.event_id,
        "event_uid": delivery.event.uid,
        "event_type": delivery.event.type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "response_status_code": delivery.response_status_code,
        "duration_ms": delivery.duration_ms,
        "error": delivery.error,
        "next_attempt_at": delivery.next_attempt_at,
        "last_attempt_at": delivery.last_attempt_at,
        "created_at": delivery.created_at,
    }


class _Scoped(APIView):
    """The owner of the endpoints in the URL: the caller (own scope) or the org in the path."""

    org_scope = False

    def owner(self) -> dict:
        if self.org_scope:
            return {"user_id": None, "org_id": self.kwargs["org_id"]}
        return {"user_id": self.request.user.pk, "org_id": None}

    def endpoint(self):
        return selectors.endpoint_of(endpoint_id=self.kwargs["endpoint_id"], **self.owner())


class _Endpoints(_Scoped):
    def get(self, request, **kwargs):
        return Response({"results": [endpoint_out(endpoint) for endpoint in selectors.endpoints_of(**self.owner())]})

    def post(self, request, **kwargs):
        body = serializers.EndpointIn(data=request.data)
        body.is_valid(raise_exception=True)

        def create(_idempotency_key):
            created = services.endpoint_create(**self.owner(), **body.validated_data)
            return Response({**endpoint_out(created.endpoint), "secret": created.secret}, status=201)

        return run_idempotent(request, create)


class _Endpoint(_Scoped):
    def get(self, request, **kwargs):
        return Response(endpoint_out(self.endpoint()))

    def patch(self, request, **kwargs):
        body = serializers.EndpointPatch(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=self.endpoint(), **body.validated_data)
        return Response(endpoint_out(endpoint))

    def delete(self, request, **kwargs):
        endpoint = self.endpoint()
        services.endpoint_delete(endpoint=endpoint)
        return Response({"id": endpoint.pk, "deleted": True})


class _RotateSecret(_Scoped):
    def post(self, request, **kwargs):
        endpoint = self.endpoint()

        def rotate(_idempotency_key):
            rotated, secret = services.endpoint_rotate_secret(endpoint=endpoint)
            payload = {
                "id": rotated.pk,
                "secret": secret,
                "previous_secret_expires_at": rotated.previous_secret_expires_at,
            }
            return Response(payload)

        return run_idempotent(request, rotate)


class _Deliveries(_Scoped):
    def get(self, request, **kwargs):
        params = serializers.DeliveryParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        page = selectors.deliveries_page(
            endpoint=self.endpoint(), cursor=params.validated_data.get("cursor"), limit=params.validated_data["limit"]
        )
        return Response(page)


class _Redeliver(_Scoped):
    def post(self, request, **kwargs):
        delivery = selectors.delivery_of(endpoint=self.endpoint(), delivery_id=self.kwargs["delivery_id"])

        def redeliver(_idempotency_key):
            return Response(delivery_out(services.delivery_redeliver(delivery=delivery)), status=202)

        return run_idempotent(request, redeliver)


class _Test(_Scoped):
    def post(self, request, **kwargs):
        endpoint = self.endpoint()

        def ping(_idempotency_key):
            return Response(delivery_out(services.endpoint_ping(endpoint=endpoint)), status=202)

        return run_idempotent(request, ping)


def _declare(base, *, org: bool, operations: dict):
    """``base`` for one scope, with each method's schema (operation id, parameters) for that scope."""
    prefix = "org_webhooks" if org else "webhooks"
    where = "an org's" if org else "the caller's own"
    scope_params = [ORG_ID_PATH] if org else []
    schemas = {}
    for method, (suffix, summary, params, extra) in operations.items():
        schemas[method] = extend_schema(
            operation_id=f"{prefix}_{suffix}",
            summary=summary.format(where=where),
            parameters=[*scope_params, *params],
            tags=["webhooks"],
            **extra,
        )
    attrs: dict[str, object] = {"org_scope": org}
    if org:
        attrs["permission_classes"] = [IsOrgAdminOrStaff]
    cls = type(f"{'Org' if org else 'Own'}{base.__name__.lstrip('_')}View", (base,), attrs)
    return extend_schema_view(**schemas)(cls)


ENDPOINTS_OPERATIONS = {
    "get": (
        "list",
        "List {where} webhook endpoints",
        [],
        {"responses": {200: serializers.EndpointListOut, **READ_ERRORS}},
    ),
    "post": (
        "create",
        "Register a webhook endpoint for {where} events; the answer holds its secret, shown once",
        [IDEMPOTENCY_HEADER],
        {"request": serializers.EndpointIn, "responses": {201: serializers.EndpointCreatedOut, **WRITE_ERRORS}},
    ),
}
ENDPOINT_OPERATIONS = {
    "get": (
        "read",
        "One of {where} webhook endpoints",
        [ENDPOINT_ID_PATH],
        {"responses": {200: serializers.EndpointOut, **READ_ERRORS}},
    ),
    "patch": (
        "update",
        "Change the URL, events or description of one of {where} endpoints, or disable or enable it",
        [ENDPOINT_ID_PATH],
        {
            "request": serializers.EndpointPatch,
            "responses": {200: serializers.EndpointOut, **error_responses(400, 401, 403, 404, 413, 415, 429, 503)},
        },
    ),
    "delete": (
        "delete",
        "Delete one of {where} webhook endpoints and its delivery log",
        [ENDPOINT_ID_PATH],
        {"responses": {200: serializers.DeletedOut, **error_responses(401, 403, 404, 429, 503)}},
    ),
}
ROTATE_OPERATIONS = {
    "post": (
        "rotate_secret",
        "A new signing secret; the old one keeps signing (a second signature) for 24 hours",
        [ENDPOINT_ID_PATH, IDEMPOTENCY_HEADER],
        {"request": None, "responses": {200: serializers.SecretOut, **WRITE_ERRORS}},
    ),
}
DELIVERIES_OPERATIONS = {
    "get": (
        "deliveries",
        "The endpoint's deliveries newest first: status, attempts, last response code and time, next retry",
        [ENDPOINT_ID_PATH, serializers.DeliveryParams],
        {"responses": {200: serializers.DeliveryPageOut, **READ_ERRORS}},
    ),
}
REDELIVER_OPERATIONS = {
    "post": (
        "redeliver",
        "Send a delivery's event to the endpoint again (a new delivery, the same webhook-id)",
        [ENDPOINT_ID_PATH, DELIVERY_ID_PATH, IDEMPOTENCY_HEADER],
        {"request": None, "responses": {202: serializers.DeliveryOut, **WRITE_ERRORS}},
    ),
}
TEST_OPERATIONS = {
    "post": (
        "test",
        "Queue a ping event to this endpoint",
        [ENDPOINT_ID_PATH, IDEMPOTENCY_HEADER],
        {"request": None, "responses": {202: serializers.DeliveryOut, **WRITE_ERRORS}},
    ),
}

OwnEndpointsView = _declare(_Endpoints, org=False, operations=ENDPOINTS_OPERATIONS)
OwnEndpointView = _declare(_Endpoint, org=False, operations=ENDPOINT_OPERATIONS)
OwnRotateSecretView = _declare(_RotateSecret, org=False, operations=ROTATE_OPERATIONS)
OwnDeliveriesView = _declare(_Deliveries, org=False, operations=DELIVERIES_OPERATIONS)
OwnRedeliverView = _declare(_Redeliver, org=False, operations=REDELIVER_OPERATIONS)
OwnTestView = _declare(_Test, org=False, operations=TEST_OPERATIONS)

OrgEndpointsView = _declare(_Endpoints, org=True, operations=ENDPOINTS_OPERATIONS)
OrgEndpointView = _declare(_Endpoint, org=True, operations=ENDPOINT_OPERATIONS)
OrgRotateSecretView = _declare(_RotateSecret, org=True, operations=ROTATE_OPERATIONS)
OrgDeliveriesView = _declare(_Deliveries, org=True, operations=DELIVERIES_OPERATIONS)
OrgRedeliverView = _declare(_Redeliver, org=True, operations=REDELIVER_OPERATIONS)
OrgTestView = _declare(_Test, org=True, operations=TEST_OPERATIONS)
