"""Per-user throttling of writes. Reads are served from the cache and stay unthrottled.

A sliding-window counter, not DRF's sliding log: the log keeps one timestamp
per request in a list that is read, unpickled, pickled and written back on
every write (600 floats per user at the default rate), while a counter costs
one pipelined Redis round trip (INCR this window, read the previous one). The
previous window's count is weighted by how much of it still overlaps the last
``period`` seconds, so a burst at a window's edge cannot double the rate.
Attempts that are refused count too: a client that keeps hammering stays
throttled until it slows down.
"""

import math
import time

from django.core.cache import cache as django_cache
from rest_framework.throttling import SimpleRateThrottle

from ops_center.cache import breaker

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Set on a request whose write the fast path (ops_center/api/fast_writes.py) already counted.
COUNTED_ATTRIBUTE = "counted_write"


class WriteRateThrottle(SimpleRateThrottle):
    """Limits POST/PUT/PATCH/DELETE per user; the rate is settings' "writes" scope."""

    scope = "writes"
    # Set by SimpleRateThrottle.__init__ from the rate; read only when there is a rate.
    num_requests: int
    duration: int

    def get_cache_key(self, request, view):
        return self._key(request.user.pk)

    def _key(self, user_id: int) -> str:
        return f"throttle:{self.scope}:{user_id}"

    def allow_request(self, request, view):
        if request.method in SAFE_METHODS or self.rate is None or not request.user.is_authenticated:
            return True
        counted = getattr(request, COUNTED_ATTRIBUTE, None)
        if counted is not None:  # the fast write path counted this attempt before it fell through
            allowed, self._wait = counted
            return allowed
        return self.allow_user(request.user.pk)

    def count_for_fast_path(self, request, user_id: int) -> bool:
        """Count one write by ``user_id``; remember the verdict on the request for the ordinary path."""
        allowed = self.rate is None or self.allow_user(user_id)
        setattr(request, COUNTED_ATTRIBUTE, (allowed, self.wait()))
        return allowed

    def allow_user(self, user_id: int) -> bool:
        window, into_window = divmod(time.time(), self.duration)
        key = self._key(user_id)
        # Fails open when Redis is down: an outage must not turn into refused writes.
        window = int(window)
        counts = breaker.call(lambda: _count(f"{key}:{window}", f"{key}:{window - 1}", self.duration), fallback=None)
        if counts is None:
            return True
        current, previous = counts
        overlap = 1 - into_window / self.duration
        if previous * overlap + current <= self.num_requests:
            return True
        self._wait = self._seconds_until_allowed(current, previous, into_window)
        return False

    def _seconds_until_allowed(self, current: int, previous: int, into_window: float) -> int:
        """When the next attempt (which counts too) fits: once the previous window has faded enough,
        or, when this window alone is full, once it ends."""
        to_window_end = self.duration - into_window
        next_count = current + 1
        if next_count > self.num_requests or previous == 0:
            return max(1, math.ceil(to_window_end))
        faded_enough_at = (1 - (self.num_requests - next_count) / previous) * self.duration
        return max(1, math.ceil(min(faded_enough_at - into_window, to_window_end)))

    def wait(self):
        return getattr(self, "_wait", None)


def _count(current_key: str, previous_key: str, period: int) -> tuple[int, int]:
    """Add one to this window's count; return (this window's count, the previous window's)."""
    if not hasattr(django_cache, "client"):
        # The quick start's in-process cache.
        django_cache.add(current_key, 0, period * 2)
        return django_cache.incr(current_key), django_cache.get(previous_key, 0)
    current, previous = django_cache.make_key(current_key), django_cache.make_key(previous_key)
    pipeline = django_cache.client.get_client(write=True).pipeline(transaction=False)
    pipeline.incr(current)
    pipeline.expire(current, period * 2)
    pipeline.get(previous)
    incremented, _, previous_count = pipeline.execute()
    return incremented, int(previous_count or 0)
