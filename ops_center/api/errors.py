"""One error shape for every API response: {"error": {"code", "message", "details"}}.

DRF exceptions, and the DRF-free ``ApplicationError`` refusals of services and
selectors, go through ``exception_handler``; Django's own 404/500 under
/api/ through ``json_404``/``json_500``; a database that cannot be reached
becomes a 503 in ``DatabaseUnavailableMiddleware``. No HTML and no stack trace
ever reach an API client.
"""

import logging

from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from ops_center.api.exceptions import ApiError, ServiceUnavailable
from ops_center.errors import ApplicationError, Refusal

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


DRF_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ValidationError: "validation_error",
}


REFUSAL_STATUS = {
    Refusal.INVALID: status.HTTP_400_BAD_REQUEST,
    Refusal.NOT_FOUND: status.HTTP_404_NOT_FOUND,
    Refusal.CONFLICT: status.HTTP_409_CONFLICT,
    Refusal.PAYMENT_REQUIRED: status.HTTP_402_PAYMENT_REQUIRED,
}


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.details), status=REFUSAL_STATUS[exc.refusal])
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.error("database unavailable", exc_info=exc)
        exc = ServiceUnavailable()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django logs it and json_500 answers
    response.data = error_body(*_describe(exc))
    if isinstance(exc, ServiceUnavailable):
        response["Retry-After"] = "5"
    if isinstance(exc, exceptions.Throttled):
        wait = exc.wait  # type: ignore[attr-defined]  # DRF sets Throttled.wait; the stubs leave it out
        if wait is not None:
            response.data["error"]["details"]["retry_after_seconds"] = int(wait)
    return response


def _describe(exc) -> tuple[str, str, dict]:
    if isinstance(exc, ApiError):
        return exc.detail.code or exc.default_code, str(exc.detail), exc.details
    code = next((code for cls, code in DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return code, "The request has invalid fields; see details.", details
    return code, str(exc.detail), {}


def handler404(request, exception=None):
    if not request.path.startswith(API_PREFIX):
        return defaults.page_not_found(request, exception)
    return JsonResponse(error_body("not_found", "No such resource."), status=404)


def handler500(request):
    if not request.path.startswith(API_PREFIX):
        return defaults.server_error(request)
    return JsonResponse(error_body("server_error", "An unexpected error occurred; it has been logged."), status=500)


class DatabaseUnavailableMiddleware:
    """Turn an unreachable database anywhere in the request into a JSON 503."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError)) or (
            isinstance(exception, DatabaseError) and "connection" in str(exception).lower()
        ):
            logger.error("database unavailable", exc_info=exception)
            body = error_body(ServiceUnavailable.default_code, ServiceUnavailable.default_detail)
            return JsonResponse(body, status=503, headers={"Retry-After": "5"})
        return None
