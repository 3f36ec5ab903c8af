"""Staff-only analytics; cached in the analytics namespace (120 s)."""

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors
from analytics.api import serializers
from ops_center.api.fast_reads import FastRead, FastReadMixin, matching, one_of, whole_number
from ops_center.api.responses import with_cache_header
from ops_center.api.schema import error_responses


def _for_staff(principal, _kwargs, _query, values):
    return values[0] if principal["is_staff"] else None


class PlatformAnalyticsView(FastReadMixin, APIView):
    permission_classes = [IsAdminUser]
    fast_read = FastRead(keys=lambda _user_id, _kwargs, _query: [selectors.PLATFORM_KEY], answer=_for_staff)

    @extend_schema(
        operation_id="analytics_platform",
        summary="Users, orgs, subscriptions, MRR, revenue and credits over 30 days, top orgs (staff)",
        responses={200: serializers.PlatformOut, **error_responses(401, 403, 503)},
    )
    def get(self, request):
        data, hit = selectors.platform_analytics()
        return with_cache_header(Response(data), hit)


def _trends_key(_user_id, _kwargs, query):
    return [selectors.revenue_trends_key(**{**TREND_DEFAULTS, **query})]


TREND_DEFAULTS = {name: field.default for name, field in serializers.TrendParams().fields.items()}


class RevenueTrendsView(FastReadMixin, APIView):
    permission_classes = [IsAdminUser]
    fast_read = FastRead(
        keys=_trends_key,
        answer=_for_staff,
        query={
            "interval": one_of("day", "week", "month"),
            "periods": whole_number(1, 366),
            "currency": matching("[A-Z]{3}"),
        },
    )

    @extend_schema(
        operation_id="analytics_revenue_trends",
        summary="Revenue per day, week or month, subscriptions and purchases apart, with no gaps (staff)",
        parameters=[serializers.TrendParams],
        responses={200: serializers.TrendsOut, **error_responses(400, 401, 403, 503)},
    )
    def get(self, request):
        params = serializers.TrendParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        data, hit = selectors.revenue_trends(**params.validated_data)
        return with_cache_header(Response(data), hit)
