"""Input serializers validate; output serializers document the hand-built dicts."""

from rest_framework import serializers

from billing.api.fields import AmountField
from billing.models import TransactionType
from billing.money import CREDIT_DECIMAL_PLACES, CREDIT_MAX_DIGITS, CREDIT_QUANTUM
from billing.selectors.credits import TRANSACTION_COLUMNS
from ops_center.api.fields import (
    IdField,
    InputSerializer,
    QueryParams,
    SlugField,
    StrictIntegerField,
    cursor_field,
    limit_field,
)


def credits_field(**kwargs) -> serializers.DecimalField:
    """An amount in a response. Amounts in requests are ``AmountField``s."""
    return serializers.DecimalField(
        max_digits=CREDIT_MAX_DIGITS, decimal_places=CREDIT_DECIMAL_PLACES, coerce_to_string=True, **kwargs
    )


class PurchaseInput(InputSerializer):
    package = SlugField(required=False, max_length=40)
    credits = AmountField(required=False, min_value=1, max_value=1_000_000)

    def validate(self, attrs):
        if ("package" in attrs) == ("credits" in attrs):
            raise serializers.ValidationError("Send exactly one of 'package' or 'credits'.")
        if "credits" in attrs and attrs["credits"] != attrs["credits"].to_integral_value():
            raise serializers.ValidationError({"credits": ["Custom purchases are in whole credits."]})
        return attrs


class UsageInput(InputSerializer):
    service = SlugField(max_length=60)
    units = StrictIntegerField(min_value=1, max_value=10**12)
    credits = AmountField(required=False, min_value=CREDIT_QUANTUM)
    org_id = IdField(required=False)
    description = serializers.CharField(required=False, max_length=200, allow_blank=True)


class TransactionFilters(QueryParams):
    transaction_type = serializers.ChoiceField(choices=TransactionType.choices, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    cursor = cursor_field()
    limit = limit_field()


class SummaryParams(QueryParams):
    days = StrictIntegerField(required=False, min_value=1, max_value=366, default=30)


class AllocationOut(serializers.Serializer):
    org_id = serializers.IntegerField()
    org_name = serializers.CharField()
    allocated = credits_field()
    used = credits_field()
    remaining = credits_field()


class BalanceOut(serializers.Serializer):
    balance = credits_field()
    allocations = AllocationOut(many=True)
    total_available = credits_field()


def transaction_out(row) -> dict:
    """A ledger row as the API shows it after a write: the same columns the history pages select."""
    return {column: getattr(row, column) for column in TRANSACTION_COLUMNS}


class TransactionOut(serializers.Serializer):
    """Documents ``transaction_out`` and the history rows; a test holds its fields to TRANSACTION_COLUMNS."""

    id = serializers.IntegerField()
    transaction_type = serializers.ChoiceField(choices=TransactionType.choices)
    amount = credits_field()
    credits_before = credits_field()
    credits_after = credits_field()
    description = serializers.CharField()
    org_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class TransactionPageOut(serializers.Serializer):
    results = TransactionOut(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class DayUsageOut(serializers.Serializer):
    date = serializers.DateField()
    credits = credits_field()


class ServiceUsageOut(serializers.Serializer):
    service = serializers.CharField()
    credits = credits_field()
    units = serializers.IntegerField()
    events = serializers.IntegerField()


class UsageSummaryOut(serializers.Serializer):
    days = serializers.IntegerField()
    start_date = serializers.DateField()
    end_date = serializers.DateField()
    total_credits = credits_field()
    by_day = DayUsageOut(many=True)
    by_service = ServiceUsageOut(many=True)


class CreditsWriteOut(serializers.Serializer):
    transaction = TransactionOut()
    balance = credits_field(help_text="Balance after the write: personal, or the allocation's remaining credits.")
    invoice_id = serializers.IntegerField(required=False)


class PackageOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    credits = credits_field()
    price_minor = serializers.IntegerField()
    currency = serializers.CharField()
