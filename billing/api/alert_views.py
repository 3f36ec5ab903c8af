"""Alert thresholds for the low-credit webhooks: the caller's account, and an org's pool and allocations."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import alerts
from billing.api.fields import AmountField
from billing.api.serializers import credits_field
from ops_center.api.schema import ORG_ID_PATH, error_responses
from webhooks.api.permissions import IsOrgAdminOrStaff


class ThresholdField(AmountField):
    """An AmountField that also takes JSON null (off); DRF's DecimalField would take "" and "  " as null too."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, max_value=10**12, **kwargs)

    def validate_empty_values(self, data):
        if data is None:
            return True, None
        return serializers.Field.validate_empty_values(self, data)


THRESHOLD_HELP = "Alert when a debit takes the balance from above this to at or below it; null turns it off."


class AccountAlertsIn(serializers.Serializer):
    low_balance_threshold = ThresholdField(help_text=THRESHOLD_HELP)


class AccountAlertsOut(serializers.Serializer):
    low_balance_threshold = credits_field(allow_null=True, help_text=THRESHOLD_HELP)


class PoolAlertsIn(serializers.Serializer):
    low_pool_threshold = ThresholdField(help_text="credit_pool.low: on the pool's unused credits (total - used).")
    low_allocation_threshold = ThresholdField(help_text="allocation.low: on each member's remaining allocation.")


class PoolAlertsOut(serializers.Serializer):
    low_pool_threshold = credits_field(allow_null=True)
    low_allocation_threshold = credits_field(allow_null=True)


class AccountAlertsView(APIView):
    @extend_schema(
        operation_id="credits_alerts_read",
        summary="The caller's low-balance alert threshold (credits.balance_low webhooks)",
        responses={200: AccountAlertsOut, **error_responses(400, 401, 503)},
    )
    def get(self, request):
        return Response(alerts.account_alerts(request.user.pk))

    @extend_schema(
        operation_id="credits_alerts_update",
        summary="Set the caller's low-balance alert threshold; null turns it off",
        request=AccountAlertsIn,
        responses={200: AccountAlertsOut, **error_responses(400, 401, 413, 415, 429, 503)},
    )
    def put(self, request):
        body = AccountAlertsIn(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(alerts.account_alerts_set(user_id=request.user.pk, **body.validated_data))


class PoolAlertsView(APIView):
    permission_classes = [IsOrgAdminOrStaff]

    @extend_schema(
        operation_id="org_credit_pool_alerts_read",
        summary="The org's pool and allocation alert thresholds (admins, staff)",
        parameters=[ORG_ID_PATH],
        responses={200: PoolAlertsOut, **error_responses(400, 401, 403, 404, 503)},
    )
    def get(self, request, org_id: int):
        return Response(alerts.pool_alerts(org_id))

    @extend_schema(
        operation_id="org_credit_pool_alerts_update",
        summary="Set the org's pool and allocation alert thresholds; null turns one off (admins, staff)",
        parameters=[ORG_ID_PATH],
        request=PoolAlertsIn,
        responses={200: PoolAlertsOut, **error_responses(400, 401, 403, 404, 413, 415, 429, 503)},
    )
    def put(self, request, org_id: int):
        body = PoolAlertsIn(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(alerts.pool_alerts_set(org_id=org_id, **body.validated_data))
