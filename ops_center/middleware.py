"""The browser's middleware (sessions, the session user, messages), passed by API-key calls.

An API call with ``Authorization: Bearer`` is authenticated by its key alone
(``ApiKeyAuthentication`` answers or refuses before DRF would look at a
session), so a session, a session user and flash messages can never touch
it; yet each of the three would still run on every call, the hottest requests
this server answers. These subclasses step aside for such a
call and run as Django's own for everything else: the admin, the API docs, a
browser with a session. They stay in ``MIDDLEWARE`` under Django's names'
bases, so the admin's system checks still find them. CSRF protection stays
Django's own middleware: the deploy checks look for it by name, and DRF's views
are exempt from it anyway.
"""

from collections.abc import Awaitable

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

from ops_center.api.errors import API_PREFIX
from ops_center.api.fast_reads import bearer_key


def is_api_key_call(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX) and bearer_key(request) is not None


class _BrowserOnly(MiddlewareMixin):
    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if is_api_key_call(request):
            return self.get_response(request)
        return super().__call__(request)


class BrowserSessionMiddleware(_BrowserOnly, SessionMiddleware):
    pass


class BrowserAuthenticationMiddleware(_BrowserOnly, AuthenticationMiddleware):
    pass


class BrowserMessageMiddleware(_BrowserOnly, MessageMiddleware):
    pass
