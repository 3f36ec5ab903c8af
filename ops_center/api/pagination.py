"""Keyset (cursor) pagination: every paged list here goes through ``keyset_page``.

A list is ordered by a few columns (``SortKey``), the last one unique, so the
order is total. The cursor is the sort key of the last row served, signed so
a client cannot forge or edit it, and salted with the endpoint's scope so a
cursor from one list is an invalid cursor on another (whose rows it does not
describe) rather than a filter on the wrong columns. Each page asks for rows
strictly after the cursor in that order, so rows written while a client pages
never cause a skip or a repeat, and page N costs what page 1 does.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core import signing
from django.db.models import Q, QuerySet

from ops_center.errors import ApplicationError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_SALT = "ops_center.cursor"
# The scope of /credits/transactions, the history keyset_page serves by default.
TRANSACTIONS_SCOPE = "credits.transactions"


class InvalidCursor(ApplicationError):
    """Raised by selectors while they page, so it is a refusal of the domain's kind, not DRF's."""

    default_code = "invalid_cursor"
    default_message = "The cursor is malformed or was tampered with."


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


def _integer(value) -> int:
    if type(value) is not int:
        raise TypeError("not an integer")
    return value


def _datetime(value) -> datetime:
    if not isinstance(value, str):
        raise TypeError("not an ISO 8601 string")
    return datetime.fromisoformat(value)


def _same(value):
    return value


@dataclass(frozen=True)
class SortKey:
    """One column of a keyset order, and how its value travels in a cursor.

    ``dump`` turns the row's value into JSON; ``load`` turns it back and raises
    TypeError, ValueError or ArithmeticError on anything a real cursor never holds.
    """

    field: str
    descending: bool = False
    dump: Callable[[Any], Any] = _same
    load: Callable[[Any], Any] = _integer

    @property
    def ordering(self) -> str:
        return f"-{self.field}" if self.descending else self.field


# Histories (the ledger, webhook deliveries): newest first, the id breaking ties.
NEWEST_FIRST = (
    SortKey("created_at", descending=True, dump=datetime.isoformat, load=_datetime),
    SortKey("id", descending=True),
)


def _after(order: tuple[SortKey, ...], values: list) -> Q:
    """Rows strictly after ``values`` in ``order``: (a > x) OR (a = x AND b > y) OR ..., with < for descending keys."""
    after = Q()
    equal: dict = {}
    for key, value in zip(order, values, strict=True):
        lookup = "lt" if key.descending else "gt"
        after |= Q(**equal, **{f"{key.field}__{lookup}": value})
        equal[key.field] = value
    return after


def encode_cursor(row: dict, *, order: tuple[SortKey, ...] = NEWEST_FIRST, scope: str = TRANSACTIONS_SCOPE) -> str:
    """The cursor of the page after ``row``."""
    return sign_cursor([key.dump(row[key.field]) for key in order], scope=scope)


def decode_cursor(cursor: str, *, order: tuple[SortKey, ...] = NEWEST_FIRST, scope: str = TRANSACTIONS_SCOPE) -> list:
    try:
        return [key.load(value) for key, value in zip(order, read_cursor(cursor, len(order), scope=scope), strict=True)]
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise InvalidCursor() from exc


def keyset_page(
    queryset: QuerySet,
    *,
    cursor: str | None,
    limit: int,
    scope: str = TRANSACTIONS_SCOPE,
    order: tuple[SortKey, ...] = NEWEST_FIRST,
    fetch: Callable[[QuerySet], list[dict]] = list,
) -> tuple[list[dict], str | None]:
    """One page of a ``values()`` queryset in ``order``, and the cursor of the next page (or None). One query.

    ``scope`` names the endpoint the cursor belongs to (and anything else that
    changes what the sort key means); it defaults to the caller's ledger,
    /credits/transactions. ``fetch`` runs the page's query, e.g. on a replica,
    and may convert the rows; the next cursor is read from what it returns.
    """
    if cursor:
        queryset = queryset.filter(_after(order, decode_cursor(cursor, order=order, scope=scope)))
    rows = fetch(queryset.order_by(*(key.ordering for key in order))[: limit + 1])
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1], order=order, scope=scope)
