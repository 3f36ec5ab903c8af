"""Per-user throttling of writes. Reads are served from the cache and stay unthrottled."""

from rest_framework.throttling import UserRateThrottle

from ops_center.cache import guarded_cache


class WriteRateThrottle(UserRateThrottle):
    """Limits POST/PUT/PATCH/DELETE per user; the rate is settings' "writes" scope."""

    scope = "writes"
    # Fails open when Redis is down: an outage must not turn into refused writes.
    cache = guarded_cache

    def allow_request(self, request, view):
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return super().allow_request(request, view)
