"""Idempotent POSTs: a replayed ``Idempotency-Key`` returns the first response.

The record is claimed with ``INSERT ... ON CONFLICT DO NOTHING`` inside the
same database transaction as the write it guards:

* the first request inserts the record, runs the write, stores its response
  and commits both together;
* a concurrent request with the same key blocks on the unique index until the
  first commits, then finds the stored response and replays it, so the write
  happens at most once;
* if the first request fails, its transaction (record included) rolls back and
  a retry runs afresh: a failed request wrote nothing, so there is nothing to
  replay;
* the same key with a different body is a 422.
"""

import hashlib
from collections.abc import Callable

import orjson
from django.db import connection, transaction
from rest_framework.request import Request
from rest_framework.response import Response

from ops_center.api.exceptions import ApiError, Unprocessable
from ops_center.api.renderers import json_default
from ops_center.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 128


class InvalidIdempotencyKey(ApiError):
    default_code = "invalid_idempotency_key"
    default_detail = f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters."


def idempotency_key_of(request: Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not (0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable()):
        raise InvalidIdempotencyKey()
    return key


def fingerprint(request: Request) -> str:
    canonical = orjson.dumps(request.data, default=json_default, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(request.path.encode() + b"\n" + canonical).hexdigest()


def run_idempotent(request: Request, handle: Callable[[str | None], Response]) -> Response:
    """Run ``handle(key)`` at most once per (user, key); ``handle`` must be transactional."""
    key = idempotency_key_of(request)
    if key is None:
        return handle(None)
    request_fingerprint = fingerprint(request)
    with transaction.atomic():
        if not _claim(request.user.pk, key, request.path, request_fingerprint):
            return _replay(request.user.pk, key, request_fingerprint)
        response = handle(key)
        _store_response(request.user.pk, key, response)
        return response


def _claim(user_id: int, key: str, endpoint: str, request_fingerprint: str) -> bool:
    table = IdempotencyRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (user_id, key, endpoint, request_fingerprint, response_body, created_at) "  # noqa: S608 - table name is ours
            "VALUES (%s, %s, %s, %s, '', CURRENT_TIMESTAMP) ON CONFLICT (user_id, key) DO NOTHING RETURNING id",
            [user_id, key, endpoint, request_fingerprint],
        )
        return cursor.fetchone() is not None


_STORE_RESPONSE = (
    f"UPDATE {IdempotencyRecord._meta.db_table} SET status_code = %s, response_body = %s "  # noqa: S608 - our table
    "WHERE user_id = %s AND key = %s"
)


def _store_response(user_id: int, key: str, response: Response) -> None:
    body = orjson.dumps(response.data, default=json_default).decode()
    with connection.cursor() as cursor:
        cursor.execute(_STORE_RESPONSE, [response.status_code, body, user_id, key])


def _replay(user_id: int, key: str, request_fingerprint: str) -> Response:
    record = IdempotencyRecord.objects.get(user_id=user_id, key=key)
    if record.request_fingerprint != request_fingerprint:
        raise Unprocessable(
            "This Idempotency-Key was already used with a different request.",
            code="idempotency_key_reused",
            details={"idempotency_key": key},
        )
    response = Response(orjson.loads(record.response_body), status=record.status_code)
    response["Idempotent-Replayed"] = "true"
    return response
