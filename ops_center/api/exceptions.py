"""Errors of the HTTP layer itself (parsing, idempotency headers, cursors, outages): each a
status, a stable code, a message and details. Services and selectors raise the
DRF-free ``ops_center.errors.ApplicationError`` instead.
"""

from rest_framework import exceptions, status
from rest_framework.exceptions import ErrorDetail


class ApiError(exceptions.APIException):
    """Base for our own errors: a status, a stable code, a message and details."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    default_code = "bad_request"
    default_detail = "The request could not be processed."
    detail: ErrorDetail  # always a message: APIException makes a str detail one ErrorDetail

    def __init__(self, message: str | None = None, *, details: dict | None = None, code: str | None = None):
        super().__init__(message or self.default_detail, code or self.default_code)
        self.details = details or {}


class RequestTooLarge(ApiError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"
    default_detail = "The request body is too large."


class Unprocessable(ApiError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "unprocessable"
    default_detail = "The request is well-formed but cannot be processed."


class ServiceUnavailable(ApiError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "service_unavailable"
    default_detail = "A backing service is unavailable; retry shortly."
