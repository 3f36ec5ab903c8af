import importlib

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from ops_center.tests.api_support import SchemaCheckedClient
from orgs.tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache, so no answer leaks between tests."""
    cache.clear()
    yield
    cache.clear()


SQLITE_SETTINGS = "config.settings_test_sqlite"


@pytest.fixture(autouse=True, scope="session")
def _suite_runs_on_the_intended_database(django_db_setup, django_db_blocker):
    """PostgreSQL, except in the quick start's SQLite pass, which must really be SQLite."""
    expected = "sqlite" if settings.SETTINGS_MODULE == SQLITE_SETTINGS else "postgresql"
    with django_db_blocker.unblock():
        assert connection.vendor == expected, f"this pass runs on {expected}, not {connection.vendor}"


def pytest_collection_modifyitems(config, items):
    """In the SQLite pass, skip the tests of PostgreSQL-only features, giving each one's reason."""
    if settings.SETTINGS_MODULE != SQLITE_SETTINGS:
        return
    for item in items:
        marker = item.get_closest_marker("postgresql_only")
        if marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "PostgreSQL only")
            item.add_marker(pytest.mark.skip(reason=f"PostgreSQL only: {reason}"))


@pytest.fixture
def default_catalog(django_db_blocker):
    """Transactional tests flush the tables, data migrations included; put the catalog back."""
    catalog = importlib.import_module("billing.migrations.0005_default_catalog")
    with django_db_blocker.unblock():
        catalog.add_catalog(django_apps, None)


@pytest.fixture
def api():
    return SchemaCheckedClient()


@pytest.fixture
def user():
    return UserFactory()


@pytest.fixture
def user_api(api, user):
    return api.as_user(user)
