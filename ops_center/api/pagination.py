"""Keyset (cursor) pagination for append-mostly histories.

The cursor is the (created_at, id) of the last row served, signed so a client
cannot forge or edit it, and salted with the endpoint's scope so a cursor
from one history is an invalid cursor on another (whose rows it does not
describe) rather than a filter on the wrong columns. Rows are ordered by (created_at DESC, id DESC) and
each page asks for rows strictly before the cursor, so rows written while a
client pages never cause a skip or a repeat, and page N costs what page 1 does.
"""

from datetime import datetime

from django.core import signing
from django.db.models import Q, QuerySet

from ops_center.api.exceptions import ApiError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_SALT = "ops_center.cursor"
# The scope of /credits/transactions, the history keyset_page serves by default.
TRANSACTIONS_SCOPE = "credits.transactions"


class InvalidCursor(ApiError):
    default_code = "invalid_cursor"
    default_detail = "The cursor is malformed or was tampered with."


def _salt(scope: str) -> str:
    return f"{_SALT}:{scope}"


def sign_cursor(values: list, *, scope: str) -> str:
    """An opaque, tamper-evident cursor holding the sort key of the last row served.

    ``scope`` names the history (endpoint, and anything else that changes what
    the sort key means); only ``read_cursor`` with the same scope accepts it.
    """
    return signing.dumps(values, salt=_salt(scope), compress=True)


def read_cursor(cursor: str, length: int, *, scope: str) -> list:
    try:
        values = signing.loads(cursor, salt=_salt(scope))
    except (signing.BadSignature, ValueError) as exc:  # ValueError: a valid signature over bad data
        raise InvalidCursor() from exc
    if not isinstance(values, list) or len(values) != length:
        raise InvalidCursor()
    return values


def encode_cursor(created_at: datetime, row_id: int, *, scope: str = TRANSACTIONS_SCOPE) -> str:
    return sign_cursor([created_at.isoformat(), row_id], scope=scope)


def decode_cursor(cursor: str, *, scope: str = TRANSACTIONS_SCOPE) -> tuple[datetime, int]:
    created_at, row_id = read_cursor(cursor, 2, scope=scope)
    if not isinstance(created_at, str) or type(row_id) is not int:
        raise InvalidCursor()
    try:
        return datetime.fromisoformat(created_at), row_id
    except ValueError as exc:
        raise InvalidCursor() from exc


def keyset_page(
    queryset: QuerySet, *, cursor: str | None, limit: int, scope: str = TRANSACTIONS_SCOPE
) -> tuple[list[dict], str | None]:
    """One page of a ``values()`` queryset newest first, and the cursor of the next page (or None).

    ``scope`` names the endpoint the cursor belongs to; it defaults to the
    caller's ledger, /credits/transactions, the one history paged this way.
    """
    if cursor:
        created_at, row_id = decode_cursor(cursor, scope=scope)
        queryset = queryset.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=row_id))
    rows = list(queryset.order_by("-created_at", "-id")[: limit + 1])
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(last["created_at"], last["id"], scope=scope)
