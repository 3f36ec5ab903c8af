import pytest
from django.test import override_settings

from config.settings import redis_cache
from ops_center import cache
from ops_center.tests.redis_server import DisposableRedis


@pytest.fixture
def disposable_redis(settings):
    """A Redis of the test's own as the cache, which the test may stop and start; a short breaker cooldown."""
    server = DisposableRedis()
    server.start()
    settings.CACHE_BREAKER_COOLDOWN = 0.5
    with override_settings(CACHES={"default": redis_cache(server.url)}):
        cache.breaker.reset()
        yield server
    server.close()
    cache.breaker.reset()
