"""Idempotent POSTs on their happy path, before DRF.

A metering client's debit is the hottest write. On the ordinary path it pays
for DRF's request wrapping, content negotiation, authentication, permission and
throttle classes, the strict parser and the response rendering around one
service call. Here, a view that declares a ``FastWrite`` takes a well-formed
request the short way: the caller's principal from Redis (as ``fast_reads``
does) in the same round trip as the cached values the write will read (its
``read_ahead``: a debit's pricing rule), the write throttle, the view's own
input serializer, the service and the idempotency record in one transaction,
and an orjson body. A write that can be one statement (``write_at_once``: a
personal debit that emits no alert) is tried first, committing by itself with
its key's claim inside it, and takes the transaction only when it declines.

It is only ever a shortcut to the same answer. It answers a success, and a
service's refusal (402 and the rest) of a request without an Idempotency-Key,
in the error shape the exception handler gives. Everything else is left to the
ordinary path: another auth scheme or an unknown key, a body that is not a flat
JSON object of strings and integers, invalid input, a throttled caller, a keyed
request refused or whose key is already taken (a stored response may be the
answer). Falling through after the write was attempted is safe because that
attempt rolled back; the ordinary path then runs it afresh, replays the stored
response, or gives the error, exactly as before. A throttled attempt is counted
once: the verdict rides on the request (``throttling.COUNTED_ATTRIBUTE``).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.db import IntegrityError, connection
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from rest_framework.response import Response

from ops_center import cache
from ops_center.api import idempotency
from ops_center.api.errors import REFUSAL_STATUS, error_body
from ops_center.api.fast_reads import ViewBase, bearer_key, json_response, key_owner
from ops_center.api.keys import PRINCIPAL_NAMESPACE, hash_api_key, principal_part
from ops_center.api.throttling import WriteRateThrottle
from ops_center.errors import ApplicationError
from ops_center.idempotency_claims import Claim

_INT64 = range(-(2**63), 2**63)
_JSON_TYPES = ("application/json", "application/json; charset=utf-8")
_ACCEPTED = ("", "*/*", "application/json")

# (the caller, Idempotency-Key or None, validated input) -> (status code, response body)
Write = Callable[[Any, str | None, dict], tuple[int, Any]]


@dataclass(frozen=True)
class FastWrite:
    """How one view writes: its input serializer, the write, and the caller built from a cached principal.

    ``write`` must be transactional and free of HTTP: both paths run it, the
    ordinary one with the user DRF authenticated.
    """

    input: type
    write: Write
    user_from_principal: Callable[[dict], Any]
    # Cache keys (namespace, *parts) the write will read, from the raw body: fetched in the principal's round trip.
    read_ahead: Callable[[dict], list[tuple]] = lambda _body: []
    # The write as one statement that commits by itself, the key's Claim inside it, tried first outside
    # a transaction: (status, body), or None when ``write`` must run in its transaction instead.
    write_at_once: Callable[[Any, Claim | None, dict], tuple[int, Any] | None] | None = None
    # A replay's answer for a key that write_at_once claimed, rendered from the rows it wrote.
    rendered_later: idempotency.RenderedLater | None = None


def _flat_body(request: HttpRequest) -> dict | None:
    """The body as the strict parser would give it, when it is a flat object of strings and integers."""
    if request.META.get("CONTENT_TYPE", "").lower() not in _JSON_TYPES:
        return None
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not 0 < length <= settings.API_MAX_BODY_BYTES:
        return None
    try:
        data = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return None
    # A float, a bool, null or a nested value is the strict parser's to judge (it makes Decimals).
    if not isinstance(data, dict) or not all(
        type(value) is str or (type(value) is int and value in _INT64) for value in data.values()
    ):
        return None
    return data


def serve(fast_write: FastWrite, request: HttpRequest, headers: Mapping[str, str]) -> HttpResponse | None:
    """The response of a write that succeeded, or None when the ordinary path must answer."""
    raw_key = bearer_key(request)
    if raw_key is None or request.META.get("HTTP_ACCEPT", "") not in _ACCEPTED:
        return None
    key_hash = hash_api_key(raw_key)
    user_id = key_owner(key_hash)
    if user_id is None:
        return None
    idempotency_key = request.META.get("HTTP_IDEMPOTENCY_KEY")
    if idempotency_key is not None and not idempotency.is_valid_key(idempotency_key):
        return None
    data = _flat_body(request)
    if data is None:
        return None
    principal_key = (PRINCIPAL_NAMESPACE, principal_part(key_hash))
    found = cache.fetch([principal_key, *fast_write.read_ahead(data)])
    entries = cache.entries_in(found, [principal_key])
    if found is None or entries is None:
        return None
    principal = entries[0][1]
    if principal.get("user_id") != user_id:
        return None
    if not WriteRateThrottle().count_for_fast_path(request, user_id):
        return None
    body = fast_write.input(data=data)
    if not body.is_valid():
        return None
    user = fast_write.user_from_principal(principal)

    def write() -> tuple[int, Any]:
        return fast_write.write(user, idempotency_key, body.validated_data)

    try:
        with cache.reading_ahead(found):
            claim = None
            if idempotency_key is not None:
                fingerprint = idempotency.fingerprint(request.path, data)
                claim = Claim(user_id, idempotency_key, request.path, fingerprint)
            answer = None
            if fast_write.write_at_once is not None and not connection.in_atomic_block:
                answer = fast_write.write_at_once(user, claim, body.validated_data)
            if answer is not None:
                status, payload = answer
            elif claim is None:
                status, payload = write()
            else:
                status, payload = idempotency.write_once(
                    claim.user_id,
                    claim.key,
                    claim.endpoint,
                    claim.request_fingerprint,
                    write,
                    answer_of=lambda answer: answer,
                )
    except ApplicationError as refusal:
        if idempotency_key is not None:
            return None  # a response stored under the key may be the answer: run_idempotent looks
        status, payload = REFUSAL_STATUS[refusal.refusal], error_body(refusal.code, refusal.message, refusal.details)
    except (IntegrityError, idempotency.KeyTaken):
        return None
    cache.record_hits([PRINCIPAL_NAMESPACE])
    return json_response(payload, headers, status)


class FastWriteMixin(ViewBase):
    """For an APIView: try ``fast_write`` on a POST before DRF's dispatch, and run it the ordinary way after."""

    fast_write: FastWrite

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "POST":
            response = serve(self.fast_write, request, self.default_response_headers)
            if response is not None:
                return response
        return super().dispatch(request, *args, **kwargs)

    def write_the_ordinary_way(self, request) -> HttpResponseBase:
        """The view's ``post``: the same input serializer and write, through DRF and ``run_idempotent``."""
        body = self.fast_write.input(data=request.data)
        body.is_valid(raise_exception=True)

        def write(idempotency_key: str | None) -> Response:
            status, payload = self.fast_write.write(request.user, idempotency_key, body.validated_data)
            return Response(payload, status=status)

        return idempotency.run_idempotent(request, write, rendered_later=self.fast_write.rendered_later)
