"""Org billing endpoints: thin views over the org selectors and pool_allocate."""

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import allocations, selectors
from billing.api import org_serializers
from billing.api.serializers import transaction_out
from billing.errors import PoolNotFound, SubscriptionNotFound
from billing.selectors.orgs import DEFAULT_USAGE_DAYS, credit_pool_key, members_usage_key, subscription_key
from ops_center.api.fast_reads import FastRead, FastReadMixin, exactly
from ops_center.api.idempotency import run_idempotent
from ops_center.api.pagination import DEFAULT_LIMIT
from ops_center.api.responses import with_cache_header
from ops_center.api.schema import IDEMPOTENCY_HEADER, ORG_ID_PATH, error_responses
from orgs.api.permissions import IsOrgAdmin, IsOrgMember
from orgs.selectors import role_key

ORG_READ_ERRORS = error_responses(400, 401, 403, 404, 503)


def org_fast_read(permission, payload_key, render=lambda payload: payload, query=None) -> FastRead:
    """A cached org read: the caller's cached role decides, as ``permission`` would; a missing payload is a 404."""

    def answer(principal, _kwargs, _query, values):
        role, payload = values
        if payload is None or not permission.allows_read(role=role, is_staff=principal["is_staff"]):
            return None
        return render(payload)

    return FastRead(
        keys=lambda user_id, kwargs, _query: [
            role_key(user_id=user_id, org_id=kwargs["org_id"]),
            payload_key(org_id=kwargs["org_id"]),
        ],
        answer=answer,
        query=query,
    )


def subscription_out(subscription: dict) -> dict:
    return {**subscription, "days_left": selectors.days_left(subscription=subscription)}


class OrgSubscriptionView(FastReadMixin, APIView):
    permission_classes = [IsOrgMember]
    fast_read = org_fast_read(IsOrgMember, subscription_key, render=subscription_out)

    @extend_schema(
        operation_id="org_subscription",
        summary="The org's current subscription (members, admins, staff)",
        parameters=[ORG_ID_PATH],
        responses={200: org_serializers.SubscriptionOut, **ORG_READ_ERRORS},
    )
    def get(self, request, org_id: int):
        subscription, hit = selectors.org_subscription(org_id=org_id)
        if subscription is None:
            raise SubscriptionNotFound(details={"org_id": org_id})
        return with_cache_header(Response(subscription_out(subscription)), hit)


class OrgCreditPoolView(FastReadMixin, APIView):
    permission_classes = [IsOrgAdmin]
    fast_read = org_fast_read(IsOrgAdmin, credit_pool_key)

    @extend_schema(
        operation_id="org_credit_pool",
        summary="The org's credit pool: total, allocated, used, available, next refresh (admins, staff)",
        parameters=[ORG_ID_PATH],
        responses={200: org_serializers.PoolOut, **ORG_READ_ERRORS},
    )
    def get(self, request, org_id: int):
        pool, hit = selectors.org_credit_pool(org_id=org_id)
        if pool is None:
            raise PoolNotFound(details={"org_id": org_id})
        return with_cache_header(Response(pool), hit)


class OwnAllocationView(APIView):
    permission_classes = [IsOrgMember]

    @extend_schema(
        operation_id="org_own_allocation",
        summary="The caller's own allocation in the org (any member)",
        parameters=[ORG_ID_PATH],
        responses={200: org_serializers.MemberAllocationOut, **ORG_READ_ERRORS},
    )
    def get(self, request, org_id: int):
        return Response(selectors.member_allocation(org_id=org_id, user_id=request.user.pk))


class AllocationsView(APIView):
    permission_classes = [IsOrgAdmin]

    @extend_schema(
        operation_id="org_allocate",
        summary="Set a member's allocation from the pool (owners and admins)",
        request=org_serializers.AllocationIn,
        parameters=[ORG_ID_PATH, IDEMPOTENCY_HEADER],
        responses={
            200: org_serializers.AllocationWriteOut,
            **error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
        },
    )
    def post(self, request, org_id: int):
        body = org_serializers.AllocationIn(data=request.data)
        body.is_valid(raise_exception=True)

        def allocate(_idempotency_key):
            result = allocations.pool_allocate(actor=request.user, org_id=org_id, **body.validated_data)
            allocation = selectors.member_allocation(org_id=org_id, user_id=result.allocation.user_id)
            ledger_row = transaction_out(result.transaction) if result.transaction else None
            return Response({"allocation": allocation, "transaction": ledger_row})

        return run_idempotent(request, allocate)


class MembersUsageView(FastReadMixin, APIView):
    permission_classes = [IsOrgAdmin]
    fast_read = org_fast_read(
        IsOrgAdmin,
        members_usage_key,
        query={
            "days": exactly(str(DEFAULT_USAGE_DAYS)),
            "sort": exactly("-usage"),
            "limit": exactly(str(DEFAULT_LIMIT)),
        },
    )

    @extend_schema(
        operation_id="org_members_usage",
        summary="Each member's allocation, use and usage in a window, cursor-paginated (admins, staff)",
        parameters=[ORG_ID_PATH, org_serializers.MembersUsageParams],
        responses={200: org_serializers.MembersUsagePageOut, **ORG_READ_ERRORS},
    )
    def get(self, request, org_id: int):
        params = org_serializers.MembersUsageParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        page, hit = selectors.members_usage_page(org_id=org_id, **params.validated_data)
        return with_cache_header(Response(page), hit)


class SubscriptionsView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="subscriptions_list",
        summary="Every subscription, newest first, filterable (staff)",
        parameters=[org_serializers.SubscriptionFilters],
        responses={200: org_serializers.SubscriptionPageOut, **error_responses(400, 401, 403, 503)},
    )
    def get(self, request):
        filters = org_serializers.SubscriptionFilters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return Response(selectors.subscriptions_page(**filters.validated_data))
