"""Shared OpenAPI pieces: the error envelope and the standard error responses."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from ops_center.api.converters import ID_SCHEMA

ErrorEnvelope = inline_serializer(
    name="Error",
    fields={
        "error": inline_serializer(
            name="ErrorBody",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "details": serializers.DictField(),
            },
        )
    },
)


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    descriptions = {
        400: "Invalid input; nothing was written.",
        401: "Missing, invalid or revoked API key.",
        402: "Not enough credits, or the payment was declined; nothing was written.",
        403: "Authenticated but not allowed (or a session write without its CSRF token).",
        404: "No such resource (or not visible to the caller).",
        409: "The request conflicts with the current state (e.g. the pool has too few credits); nothing was written.",
        413: "Request body too large.",
        415: "Unsupported content type; send application/json.",
        422: "Idempotency-Key reused with a different request.",
        429: "Too many writes; retry after details.retry_after_seconds.",
        503: "A backing service is unavailable.",
    }
    return {code: OpenApiResponse(ErrorEnvelope, description=descriptions[code]) for code in statuses}


IDEMPOTENCY_HEADER = OpenApiParameter(
    name="Idempotency-Key",
    location=OpenApiParameter.HEADER,
    required=False,
    # What ops_center.api.idempotency accepts: 1 to 128 printable ASCII characters.
    type={"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[ -~]+$"},
    description="Makes the POST safe to retry: a replay returns the first response and writes nothing.",
)

ORG_ID_PATH = OpenApiParameter(
    name="org_id",
    type=ID_SCHEMA,
    location=OpenApiParameter.PATH,
    description="The organization's id (the <id:...> path converter: 1 to 2**63 - 1).",
)
