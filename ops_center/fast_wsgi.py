"""Cache hits answered at the WSGI layer, before Django's request handler.

``ops_center.api.fast_reads`` answers a hit in one Redis round trip, but only
once Django has built the request, sent ``request_started``, run every
middleware, resolved the URL and entered the view, and then run the middleware
and ``request_finished`` again on the way out. For a hit that is most of the
request's CPU. Here a GET whose path resolves to a view with a ``fast_read`` is
served before all of that, with the same answer:

* the checks of the middleware that could refuse or redirect it run first,
  the real ones: ``SecurityMiddleware`` (the HTTPS redirect), the host
  validation and ``CommonMiddleware``; any answer of theirs is left to Django;
* ``fast_reads.serve`` decides, exactly as inside the view;
* the response hooks that add headers run on the way out: ``CommonMiddleware``
  (Content-Length), ``XFrameOptionsMiddleware`` and ``SecurityMiddleware``;
* the request is timed into the same latency histogram, under its route.

Everything else goes to Django unchanged: another method, a path without a
fast read, a miss, a revoked key, a request any middleware would answer, and
an exception (the fast path only reads, so Django can run it again). The
middleware it skips step aside for an API-key GET anyway (sessions, auth and
messages do, ``ops_center.middleware``; CSRF exempts the API views; WhiteNoise
serves only static paths; the database middleware waits for a database error,
and a hit reads no database). ``HANDLED_MIDDLEWARE`` names that list, and a
test holds ``settings.MIDDLEWARE`` to it, so a new middleware gets a decision (until then,
this path switches itself off).
"""

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, resolve

from ops_center import metrics
from ops_center.api import fast_reads

logger = logging.getLogger(__name__)

# settings.MIDDLEWARE as this module accounts for it (see the docstring).
HANDLED_MIDDLEWARE = (
    "ops_center.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "ops_center.middleware.BrowserSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "ops_center.middleware.BrowserAuthenticationMiddleware",
    "ops_center.middleware.BrowserMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "ops_center.api.errors.DatabaseUnavailableMiddleware",
)
# Paths are few (a handful of endpoints, times the orgs), but a scan of random ones must not grow a worker.
MAX_RESOLVED_PATHS = 50_000

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WSGIApplication = Callable[..., Any]
# What a path resolves to: the view class with a fast read, its URL kwargs and its route.
Route = tuple[Any, dict[str, Any], str]


# Run by this module itself, so they must be in settings.MIDDLEWARE for its answers to be Django's.
_HOOKED = {
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
}


def handles(middleware: Iterable[str]) -> bool:
    """Whether this module accounts for a MIDDLEWARE setting: none it does not know, and the ones it runs.

    (The test settings leave WhiteNoise out, which changes nothing for an API GET.) Otherwise it
    stays off, and Django answers every request.
    """
    names = set(middleware)
    return names <= set(HANDLED_MIDDLEWARE) and names >= _HOOKED


def _not_called(_request: HttpRequest) -> HttpResponseBase:
    raise AssertionError("the fast WSGI path calls the middleware's hooks, never their get_response")


class FastReadApplication:
    """Wraps Django's WSGI application: cache hits of fast-read views here, everything else there."""

    def __init__(self, django_application: WSGIApplication) -> None:
        self.django_application = django_application
        self.security = SecurityMiddleware(_not_called)
        self.common = CommonMiddleware(_not_called)
        self.x_frame_options = XFrameOptionsMiddleware(_not_called)
        self._routes: dict[str, Route | None] = {}
        self._headers: dict[type, dict[str, str]] = {}
        self.enabled = handles(settings.MIDDLEWARE)

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if self.enabled and environ.get("REQUEST_METHOD") == "GET":
            route = self._route(environ.get("PATH_INFO", ""))
            if route is not None:
                answered = self._answer(environ, route)
                if answered is not None:
                    start_response(*answered[:2])
                    return [answered[2]]
        return self.django_application(environ, start_response)

    def _answer(self, environ: dict, route: Route) -> tuple[str, list[tuple[str, str]], bytes] | None:
        view_class, kwargs, route_name = route
        started = time.perf_counter()
        request = WSGIRequest(environ)
        try:
            response = self._response(request, view_class, kwargs)
        except DisallowedHost:
            return None  # Django answers it: a 400, and the log line
        except Exception:
            # Only a read was attempted, so Django can run the request again and answer it.
            logger.exception("the fast WSGI path failed on %s; Django answers instead", environ.get("PATH_INFO"))
            return None
        if response is None:
            return None
        metrics.observe_request("GET", route_name, response.status_code, time.perf_counter() - started)
        status = f"{response.status_code} {response.reason_phrase}"
        return status, list(response.items()), response.content

    def _response(self, request: WSGIRequest, view_class: Any, kwargs: dict) -> HttpResponse | None:
        request.get_host()  # the host validation every middleware's first look at the host would do
        if self.security.process_request(request) is not None or self.common.process_request(request) is not None:
            return None  # a redirect or a refusal: Django's to give
        response = fast_reads.serve(view_class.fast_read, request, kwargs, self._view_headers(view_class, request))
        if response is None:
            return None
        # Each hook sets headers on the response it is given and returns it.
        self.common.process_response(request, response)
        self.x_frame_options.process_response(request, response)
        self.security.process_response(request, response)
        return response

    def _route(self, path: str) -> Route | None:
        if path in self._routes:
            return self._routes[path]
        try:
            match = resolve(path)
        except Resolver404:
            found = None
        else:
            view_class = getattr(match.func, "view_class", None)
            found = (view_class, match.kwargs, match.route) if hasattr(view_class, "fast_read") else None
        if len(self._routes) >= MAX_RESOLVED_PATHS:
            self._routes.clear()
        self._routes[path] = found
        return found

    def _view_headers(self, view_class: type, request: WSGIRequest) -> dict[str, str]:
        """The view's own headers (Allow, Vary), the same for every request: from one set up as as_view() does."""
        headers = self._headers.get(view_class)
        if headers is None:
            view = view_class()
            view.setup(request)  # which also answers HEAD where there is a GET, and so names it in Allow
            headers = self._headers[view_class] = view.default_response_headers
        return headers
