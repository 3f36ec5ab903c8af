"""What the API tests share: a client that checks every answer against the schema, and the error assertion."""

import json

from django.urls import Resolver404, resolve
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from ops_center import cache
from ops_center.tests.openapi import assert_matches_schema
from orgs.services import api_key_create

API_PREFIX = "/api/v1/"
UNDOCUMENTED = ("/api/v1/schema/", "/api/v1/docs/")
TRACEBACK_MARKERS = ("Traceback", 'File "', "most recent call last")


class SchemaCheckedClient(APIClient):
    """An API client that checks every documented JSON response against the OpenAPI schema."""

    def request(self, **request):
        response = super().request(**request)
        path = request["PATH_INFO"]
        documented = path.startswith(API_PREFIX) and not path.startswith(UNDOCUMENTED) and _resolves(path)
        if documented and response.status_code < 500:
            assert_matches_schema(request["REQUEST_METHOD"], path, response.status_code, response.json())
        return response

    def as_user(self, user) -> "SchemaCheckedClient":
        _, raw_key = api_key_create(user=user, name="tests")
        self.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        self.raw_key = raw_key
        return self


def _resolves(path: str) -> bool:
    try:
        resolve(path)
        return True
    except Resolver404:
        return False


def assert_error(response, status: int, code: str) -> dict:
    """The response is our JSON error envelope with this status and code; returns its "error" member."""
    text = response.content.decode(errors="replace")
    assert response.status_code == status, text[:500]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    for marker in TRACEBACK_MARKERS:
        assert marker not in text
    assert "<html" not in text.lower()
    assert "<!doctype" not in text.lower()
    body = json.loads(text)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["details"], dict)
    assert error["code"] == code, error
    return error


def redis_calls(run) -> dict[str, int]:
    """Run ``run`` and return the Redis commands it sent, by name (INFO commandstats of the real server)."""
    redis = get_redis_connection("default")
    cache.stats.flush()  # the once-a-second stats flush would otherwise land inside the window now and then
    redis.config_resetstat()
    run()
    stats = redis.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): row["calls"]
        for name, row in stats.items()
        if not name.startswith(("cmdstat_info", "cmdstat_config"))
    }
