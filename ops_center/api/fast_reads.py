"""Cache hits answered in one Redis round trip, before DRF.

The hot GETs (balance, usage summary, the first page of transactions, an org's
subscription, pool and member usage, platform analytics and revenue trends)
are cache hits nearly every time. On the ordinary path a hit costs two Redis
round trips (the caller's principal, then the payload) and the whole of DRF's
dispatch: request wrapping, content negotiation, authentication, permission
and throttle classes, and rendering. Here, a view that declares a ``FastRead``
answers a hit with one MGET of the principal and every key it needs, and
renders the cached value with orjson.

It is only ever a shortcut to the same answer. It needs the caller's user id
to name the keys, so it remembers which user an API key's hash belongs to
(``remember_key_owner``, filled by authentication). That memory grants
nothing: the principal itself comes from Redis in the same MGET, and a revoked
or deactivated key's principal is evicted there (durably, see ops_center.cache),
so a revoked key falls through to the ordinary path and its 401 exactly as
before. Anything else unusual (another auth scheme, a query string it does not
recognise, a missing or stale entry, a caller the permission would refuse, an
open breaker) also falls through, and the ordinary path answers as it always did.
"""

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from ops_center import cache
from ops_center.api.keys import PRINCIPAL_NAMESPACE, hash_api_key, principal_part
from ops_center.api.renderers import json_default

# Principals are small; the bound only keeps a scan of random keys from growing a worker without limit.
MAX_REMEMBERED_KEYS = 100_000
_key_owners: dict[str, int] = {}

UrlKwargs = Mapping[str, Any]
Query = Mapping[str, Any]


def remember_key_owner(key_hash: str, user_id: int) -> None:
    if len(_key_owners) >= MAX_REMEMBERED_KEYS:
        _key_owners.clear()
    _key_owners[key_hash] = user_id


def key_owner(key_hash: str) -> int | None:
    return _key_owners.get(key_hash)


def forget_key_owners() -> None:
    _key_owners.clear()


@dataclass(frozen=True)
class FastRead:
    """How one view answers a cache hit.

    ``query`` maps each accepted query parameter to a parser that returns its
    value or None for anything but a canonical valid string; any other
    parameter, a repeated one or a refused value falls through. ``keys`` names
    the cache keys (``(namespace, *parts)``) the answer needs, from the user id,
    the URL's kwargs and the parsed query. ``answer`` builds the body from the
    principal, the URL's kwargs, the query and those keys' values, or returns None to fall through (the
    caller may not see it, or there is nothing there: the ordinary path then
    gives the 403 or 404).
    """

    keys: Callable[[int, UrlKwargs, Query], Sequence[tuple]]
    answer: Callable[[dict, UrlKwargs, Query, list], Any]
    query: Mapping[str, Callable[[str], Any]] | None = None


def exactly(text: str) -> Callable[[str], str | None]:
    """A parser for the one value (the default) whose answer is the cached one."""
    return lambda sent: sent if sent == text else None


def whole_number(low: int, high: int) -> Callable[[str], int | None]:
    """A parser for a whole number in [low, high], written without sign or leading zeros."""

    def parse(text: str) -> int | None:
        if not re.fullmatch(r"[1-9][0-9]{0,8}", text):
            return None
        value = int(text)
        return value if low <= value <= high else None

    return parse


def any_text(text: str) -> str:
    """A parser that takes any value; the view's ``answer`` decides (e.g. a cursor it has cached)."""
    return text


def one_of(*choices: str) -> Callable[[str], str | None]:
    return lambda text: text if text in choices else None


def matching(pattern: str) -> Callable[[str], str | None]:
    compiled = re.compile(pattern)
    return lambda text: text if compiled.fullmatch(text) else None


def _parse_query(request: HttpRequest, accepted: Mapping[str, Callable[[str], Any]] | None) -> dict | None:
    if not request.META.get("QUERY_STRING"):
        return {}
    if not accepted:
        return None
    parsed = {}
    for name, values in request.GET.lists():
        parser = accepted.get(name)
        if parser is None or len(values) != 1:
            return None
        value = parser(values[0])
        if value is None:
            return None
        parsed[name] = value
    return parsed


def bearer_key(request: HttpRequest) -> str | None:
    scheme, _, raw_key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not raw_key or " " in raw_key:
        return None
    return raw_key


def serve(
    read: FastRead, request: HttpRequest, url_kwargs: UrlKwargs, headers: Mapping[str, str]
) -> HttpResponse | None:
    """The response for a cache hit, or None when the ordinary path must answer."""
    raw_key = bearer_key(request)
    if raw_key is None:
        return None
    key_hash = hash_api_key(raw_key)
    user_id = key_owner(key_hash)
    if user_id is None:
        return None
    query = _parse_query(request, read.query)
    if query is None:
        return None
    wanted = [(PRINCIPAL_NAMESPACE, principal_part(key_hash)), *read.keys(user_id, url_kwargs, query)]
    entries = cache.get_entries(wanted)
    if entries is None:
        return None
    (_, principal), *payload_entries = entries
    now = time.time()
    # The principal counts while stale, as on the ordinary path; a payload past its soft expiry is
    # recomputed there, under the stampede lock.
    if principal.get("user_id") != user_id or any(soft_expiry <= now for soft_expiry, _ in payload_entries):
        return None
    values = [value for _, value in payload_entries]
    body = read.answer(principal, url_kwargs, query, values)
    if body is None:
        return None
    cache.record_hits(namespace for namespace, *_ in wanted)
    response = json_response(body, headers)
    response["X-Cache"] = "HIT"
    return response


def json_response(body: Any, headers: Mapping[str, str], status: int = 200) -> HttpResponse:
    """What DRF's response with the orjson renderer would be, and the view's default headers."""
    response = HttpResponse(
        orjson.dumps(body, default=json_default, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
    )
    for name, value in headers.items():
        response[name] = value
    return response


if TYPE_CHECKING:
    from rest_framework.views import APIView as ViewBase
else:
    # Not imported at run time: DRF's settings import the authentication classes, which import this module.
    ViewBase = object


class FastReadMixin(ViewBase):
    """For an APIView: try ``fast_read`` on a GET before DRF's dispatch."""

    fast_read: FastRead

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "GET":
            response = serve(self.fast_read, request, kwargs, self.default_response_headers)
            if response is not None:
                return response
        return super().dispatch(request, *args, **kwargs)
