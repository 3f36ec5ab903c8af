"""Input and output serializers for org billing."""

from rest_framework import serializers

from billing.api.fields import AmountField
from billing.api.serializers import TransactionOut, credits_field
from billing.models import Plan, Subscription
from ops_center.api.fields import (
    IdField,
    InputSerializer,
    QueryParams,
    SlugField,
    StrictIntegerField,
    cursor_field,
    limit_field,
)
from orgs.models import Membership


class PlanOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    price_minor = serializers.IntegerField()
    currency = serializers.CharField()
    interval = serializers.ChoiceField(choices=Plan.Interval.choices)
    included_credits = credits_field()


class SubscriptionOut(serializers.Serializer):
    id = serializers.IntegerField()
    org_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Subscription.Status.choices)
    plan = PlanOut()
    current_period_start = serializers.DateTimeField()
    current_period_end = serializers.DateTimeField()
    cancel_at_period_end = serializers.BooleanField()
    days_left = serializers.IntegerField()


class PoolOut(serializers.Serializer):
    org_id = serializers.IntegerField()
    total = credits_field()
    allocated = credits_field()
    used = credits_field()
    available = credits_field(help_text="Credits not yet allocated to members: total - allocated.")
    next_refresh_date = serializers.DateTimeField(allow_null=True)


class AllocationIn(InputSerializer):
    user_id = IdField()
    credits = AmountField(min_value=0, help_text="The member's new allocation (not a delta).")
    note = serializers.CharField(required=False, allow_blank=True, max_length=255)


class MemberAllocationOut(serializers.Serializer):
    org_id = serializers.IntegerField()
    user_id = serializers.IntegerField()
    allocated = credits_field()
    used = credits_field()
    remaining = credits_field()
    note = serializers.CharField()
    updated_at = serializers.DateTimeField(allow_null=True)


class AllocationWriteOut(serializers.Serializer):
    allocation = MemberAllocationOut()
    transaction = TransactionOut(allow_null=True)


class MembersUsageParams(QueryParams):
    days = StrictIntegerField(required=False, min_value=1, max_value=366, default=30)
    sort = serializers.ChoiceField(choices=["-usage", "usage"], required=False, default="-usage")
    cursor = cursor_field()
    limit = limit_field()


class MemberUsageOut(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    allocated = credits_field()
    used = credits_field()
    remaining = credits_field()
    usage_in_window = credits_field()


class MembersUsagePageOut(serializers.Serializer):
    days = serializers.IntegerField()
    results = MemberUsageOut(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class SubscriptionFilters(QueryParams):
    status = serializers.ChoiceField(choices=Subscription.Status.choices, required=False)
    plan = SlugField(required=False, max_length=40)
    period_end_after = serializers.DateTimeField(required=False)
    period_end_before = serializers.DateTimeField(required=False)
    cursor = cursor_field()
    limit = limit_field()


class SubscriptionRowOut(serializers.Serializer):
    id = serializers.IntegerField()
    org_id = serializers.IntegerField()
    org_name = serializers.CharField()
    plan = serializers.CharField()
    status = serializers.ChoiceField(choices=Subscription.Status.choices)
    current_period_start = serializers.DateTimeField()
    current_period_end = serializers.DateTimeField()
    cancel_at_period_end = serializers.BooleanField()


class SubscriptionPageOut(serializers.Serializer):
    results = SubscriptionRowOut(many=True)
    next_cursor = serializers.CharField(allow_null=True)
