"""Response helpers shared by every app's views."""

from rest_framework.response import Response


def with_cache_header(response: Response, hit: bool) -> Response:
    """X-Cache: HIT|MISS, so load tests measure the hit rate from outside."""
    response["X-Cache"] = "HIT" if hit else "MISS"
    return response
