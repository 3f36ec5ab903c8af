"""Staff-only views into the cache: cross-worker stats and Redis health."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from ops_center import cache
from ops_center.api.schema import error_responses

_counts: dict[str, serializers.Field] = {
    "hits": serializers.IntegerField(),
    "misses": serializers.IntegerField(),
    "sets": serializers.IntegerField(),
    "deletes": serializers.IntegerField(),
    "hit_rate": serializers.FloatField(help_text="Percent of lookups that were hits."),
}
CacheCounts = inline_serializer(name="CacheCounts", fields=_counts)
CacheStats = inline_serializer(
    name="CacheStats",
    fields={"total": CacheCounts, "namespaces": serializers.DictField(child=CacheCounts)},
)
CacheHealth = inline_serializer(
    name="CacheHealth",
    fields={
        "status": serializers.ChoiceField(choices=["connected", "degraded", "local"]),
        "healthy": serializers.BooleanField(),
        "keyspace_hits": serializers.IntegerField(required=False),
        "keyspace_misses": serializers.IntegerField(required=False),
        "used_memory_human": serializers.CharField(required=False),
        "connected_clients": serializers.IntegerField(required=False),
        "redis_version": serializers.CharField(required=False),
        "backend": serializers.CharField(required=False),
        "detail": serializers.CharField(required=False),
    },
)


class CacheStatsView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="cache_stats",
        summary="Cache hits, misses, sets and deletes per namespace, summed over every worker",
        responses={200: CacheStats, **error_responses(401, 403)},
    )
    def get(self, request):
        return Response(cache.get_stats())


class CacheHealthView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="cache_health",
        summary="Redis status from INFO; degraded while it is unreachable (requests fall back to the database)",
        responses={200: CacheHealth, **error_responses(401, 403)},
    )
    def get(self, request):
        return Response(cache.health_check())
