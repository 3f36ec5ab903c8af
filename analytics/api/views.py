"""Staff-only analytics; cached in the analytics namespace (120 s)."""

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors
from analytics.api import serializers as io
from ops_center.api.responses import with_cache_header
from ops_center.api.schema import error_responses


class PlatformAnalyticsView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="analytics_platform",
        summary="Users, orgs, subscriptions, MRR, revenue and credits over 30 days, top orgs (staff)",
        responses={200: io.PlatformOut, **error_responses(401, 403, 503)},
    )
    def get(self, request):
        data, hit = selectors.platform_analytics()
        return with_cache_header(Response(data), hit)


class RevenueTrendsView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="analytics_revenue_trends",
        summary="Revenue per day, week or month, subscriptions and purchases apart, with no gaps (staff)",
        parameters=[io.TrendParams],
        responses={200: io.TrendsOut, **error_responses(400, 401, 403, 503)},
    )
    def get(self, request):
        params = io.TrendParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        data, hit = selectors.revenue_trends(**params.validated_data)
        return with_cache_header(Response(data), hit)
