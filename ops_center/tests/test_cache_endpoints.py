"""Staff-only cache endpoints."""

import pytest

from ops_center import cache
from ops_center.tests.api_support import SchemaCheckedClient
from orgs.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_api():
    return SchemaCheckedClient().as_user(UserFactory(is_staff=True))


def test_stats_show_what_the_api_did(staff_api, user_api):
    cache.stats.reset()
    user_api.get("/api/v1/credits/balance")
    user_api.get("/api/v1/credits/balance")

    stats = staff_api.get("/api/v1/cache/stats").json()

    balance = stats["namespaces"]["credit_balance"]
    assert (balance["hits"], balance["misses"], balance["hit_rate"]) == (1, 1, 50.0)
    assert stats["total"]["hits"] >= 1


def test_health_is_connected(staff_api):
    body = staff_api.get("/api/v1/cache/health").json()
    assert body["status"] == "connected"
    assert body["healthy"] is True


@pytest.mark.parametrize("path", ["/api/v1/cache/stats", "/api/v1/cache/health"])
def test_only_staff_may_look(api, user_api, path):
    assert user_api.get(path).status_code == 403
    assert api.__class__().get(path).status_code == 401
