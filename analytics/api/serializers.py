from rest_framework import serializers

from billing.api.serializers import credits_field
from ops_center.api.fields import QueryParams, RegexField, StrictIntegerField


class ChangeOfMoney(serializers.Serializer):
    last_30_days = serializers.IntegerField(help_text="Minor units.")
    previous_30_days = serializers.IntegerField(help_text="Minor units.")
    change_pct = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)


class RevenueWindow(ChangeOfMoney):
    currency = serializers.CharField()


class ChangeOfCredits(serializers.Serializer):
    last_30_days = credits_field()
    previous_30_days = credits_field()
    change_pct = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)


class CreditWindows(serializers.Serializer):
    purchased = ChangeOfCredits()
    consumed = ChangeOfCredits()


class Users(serializers.Serializer):
    total = serializers.IntegerField()
    active_last_30_days = serializers.IntegerField(help_text="Users with metered usage in the window.")


class Organizations(serializers.Serializer):
    total = serializers.IntegerField()


class Subscriptions(serializers.Serializer):
    by_status = serializers.DictField(child=serializers.IntegerField())
    live_by_plan = serializers.DictField(child=serializers.IntegerField(), help_text="Active and trialing.")


class Mrr(serializers.Serializer):
    currency = serializers.CharField()
    amount_minor = serializers.IntegerField()


class TopOrg(serializers.Serializer):
    org_id = serializers.IntegerField()
    name = serializers.CharField()
    credits_used = credits_field()


class PlatformOut(serializers.Serializer):
    as_of = serializers.DateField()
    window_days = serializers.IntegerField()
    users = Users()
    organizations = Organizations()
    subscriptions = Subscriptions()
    mrr = Mrr(many=True)
    revenue = RevenueWindow(many=True)
    credits = CreditWindows()
    top_orgs = TopOrg(many=True)


class TrendParams(QueryParams):
    interval = serializers.ChoiceField(choices=["day", "week", "month"], required=False, default="month")
    periods = StrictIntegerField(required=False, min_value=1, max_value=366, default=12)
    currency = RegexField(r"^[A-Z]{3}$", required=False, default="USD")


class TrendPoint(serializers.Serializer):
    period_start = serializers.DateField()
    subscriptions = serializers.IntegerField(help_text="Minor units.")
    purchases = serializers.IntegerField(help_text="Minor units.")
    total = serializers.IntegerField(help_text="Minor units.")


class TrendsOut(serializers.Serializer):
    interval = serializers.CharField()
    periods = serializers.IntegerField()
    currency = serializers.CharField()
    points = TrendPoint(many=True)
