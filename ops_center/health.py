"""Liveness and readiness probes for load balancers and orchestrators."""

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse


def healthz(request):
    """The process is up and serving; touches no backing service."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Ready when the database answers; the cache is optional (we fall back)."""
    checks = {"database": _database_ok(), "cache": _cache_ok()}
    status = 200 if checks["database"] else 503
    return JsonResponse({"status": "ok" if status == 200 else "unavailable", "checks": checks}, status=status)


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def _cache_ok() -> bool:
    try:
        cache.get("readyz-probe")
        return True
    except Exception:
        return False
