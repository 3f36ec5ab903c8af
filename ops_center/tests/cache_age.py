"""Make cached entries look older than they are, instead of waiting in a test.

A writer refills a cached view only when Redis's access clock says it was read
after it was stored (ops_center.cache._evict_reporting_read), and a key's age
is read off its remaining TTL. Shortening that TTL by N seconds makes the entry
look stored N seconds ago. PEXPIRE also counts as an access, so this stands in
for "stored a while ago, read just now"; the opposite case (stored, never read)
needs real time and is tested with a real wait.
"""

from django.core.cache import cache as django_cache
from django_redis import get_redis_connection


def backdate(keys: list[str], *, seconds: float) -> None:
    redis = get_redis_connection("default")
    for key in keys:
        stored_as = django_cache.client.make_key(key)
        remaining_ms = redis.pttl(stored_as)
        if remaining_ms > 0:
            redis.pexpire(stored_as, max(1, remaining_ms - int(seconds * 1000)))
