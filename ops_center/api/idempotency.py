"""Idempotent POSTs: a replayed ``Idempotency-Key`` returns the first response.

The write runs first and its record (the response, keyed by user and key) is
inserted with ``INSERT ... ON CONFLICT DO NOTHING`` at the end of the same
database transaction, so the write and its record commit together or not at all:

* the first request runs the write, inserts the record and commits both, in
  one statement more than the write itself;
* a concurrent request with the same key runs the write too, then blocks on the
  unique index until the first commits, finds the key taken, rolls its own write
  back and replays the stored response: the write takes effect at most once;
* a request whose write is refused (say 402, because the first request already
  spent the balance), or collides with the first on a unique key of its own
  (the ledger's user and key), replays the stored response when there is one;
* if the first request fails, nothing is recorded and a retry runs afresh;
* the same key with a different body is a 422.

A write that is one statement committing by itself (the fast path's personal
debit) cannot know its answer before it commits. It records its key inside
that statement instead (``ops_center.idempotency_claims.Claim``, answer left NULL): a concurrent request
with the same key fails on the unique index, so its statement writes nothing,
and replays render the answer from the rows the first write left.

So a handler may run more than once for one key, but only one run commits: it
must keep every effect inside the transaction, or make the effect idempotent by
the key itself (the payment gateway is charged with a key derived from it).
"""

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from django.db import IntegrityError, connection, transaction
from rest_framework.exceptions import APIException, NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from ops_center.api.exceptions import ApiError, Unprocessable
from ops_center.api.renderers import json_default
from ops_center.errors import ApplicationError
from ops_center.models import IdempotencyRecord

HEADER = "Idempotency-Key"
T = TypeVar("T")
MAX_KEY_LENGTH = 128


class InvalidIdempotencyKey(ApiError):
    default_code = "invalid_idempotency_key"
    default_detail = f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters."


def is_valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable()


def idempotency_key_of(request: Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not is_valid_key(key):
        raise InvalidIdempotencyKey()
    return key


def fingerprint(path: str, data: object) -> str:
    """What "the same request" means for a key: its path and its parsed body, keys sorted."""
    canonical = orjson.dumps(data, default=json_default, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(path.encode() + b"\n" + canonical).hexdigest()


# (user id, Idempotency-Key) -> (status code, response body) of a write whose record holds no answer
RenderedLater = Callable[[int, str], tuple[int, Any]]


def run_idempotent(
    request: Request, handle: Callable[[str | None], Response], *, rendered_later: RenderedLater | None = None
) -> Response:
    """Run ``handle(key)`` so that it takes effect at most once per (user, key); ``handle`` must be transactional.

    ``rendered_later`` answers a replay of a key recorded by a ``Claim`` (the endpoint's one-statement write).
    """
    key = idempotency_key_of(request)
    if key is None:
        return handle(None)
    user_id = request.user.pk
    if user_id is None:
        raise NotAuthenticated()  # every view taking an Idempotency-Key requires a signed-in user first
    request_fingerprint = fingerprint(request.path, request.data)
    try:
        response = write_once(
            user_id,
            key,
            request.path,
            request_fingerprint,
            lambda: handle(key),
            answer_of=lambda response: (response.status_code, response.data),
        )
    except KeyTaken:
        taken = _stored(user_id, key)
        if taken is None:  # ON CONFLICT waited for the other request's commit, so its record is there
            raise RuntimeError("the Idempotency-Key's record is missing after a conflict") from None
        return _replay(taken, request_fingerprint, rendered_later)
    except (ApplicationError, APIException, IntegrityError):  # refused, or beaten to the ledger's own unique key
        stored = _stored(user_id, key)
        if stored is None:
            raise
        return _replay(stored, request_fingerprint, rendered_later)
    return response


def write_once(
    user_id: int,
    key: str,
    endpoint: str,
    request_fingerprint: str,
    write: Callable[[], T],
    *,
    answer_of: Callable[[T], tuple[int, object]],
) -> T:
    """Run ``write`` and record its answer (status, body) under (user, key) in one transaction.

    Raises KeyTaken, with the write rolled back, when another request committed the key first.
    """
    with transaction.atomic():
        result = write()
        if not record(user_id, key, endpoint, request_fingerprint, *answer_of(result)):
            raise KeyTaken
    return result


class KeyTaken(Exception):
    """Another request committed this key first: roll this one's write back, then replay."""


_RECORD = (
    f"INSERT INTO {IdempotencyRecord._meta.db_table} "  # noqa: S608 - our table
    "(user_id, key, endpoint, request_fingerprint, status_code, response_body, created_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, CURRENT_TIMESTAMP) ON CONFLICT (user_id, key) DO NOTHING RETURNING id"
)


def record(user_id: int, key: str, endpoint: str, request_fingerprint: str, status_code: int, data: object) -> bool:
    """Store the response under (user, key) in the current transaction; False when the key is taken."""
    body = orjson.dumps(data, default=json_default).decode()
    with connection.cursor() as cursor:
        cursor.execute(_RECORD, [user_id, key, endpoint, request_fingerprint, status_code, body])
        return cursor.fetchone() is not None


def _stored(user_id: int, key: str) -> IdempotencyRecord | None:
    return IdempotencyRecord.objects.filter(user_id=user_id, key=key).first()


def _replay(record: IdempotencyRecord, request_fingerprint: str, rendered_later: RenderedLater | None) -> Response:
    if record.request_fingerprint != request_fingerprint:
        raise Unprocessable(
            "This Idempotency-Key was already used with a different request.",
            code="idempotency_key_reused",
            details={"idempotency_key": record.key},
        )
    if record.response_body is not None:
        status, data = record.status_code, orjson.loads(record.response_body)
    elif rendered_later is not None:  # the same fingerprint, so the same endpoint: the one that claimed it
        status, data = rendered_later(record.user_id, record.key)
    else:
        raise RuntimeError(f"{record.endpoint} recorded key {record.key!r} without an answer and cannot render one")
    response = Response(data, status=status)
    response["Idempotent-Replayed"] = "true"
    return response
