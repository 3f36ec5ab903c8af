"""Shared OpenAPI pieces: the error envelope and the standard error responses."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

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
    description="Makes the POST safe to retry: a replay returns the first response and writes nothing.",
)
