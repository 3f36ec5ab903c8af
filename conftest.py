import pytest
from django.core.cache import cache
from django.db import connection


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache, so no answer leaks between tests."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True, scope="session")
def _suite_runs_on_postgresql(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        assert connection.vendor == "postgresql", "the suite runs on PostgreSQL only"
