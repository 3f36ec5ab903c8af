"""The credit amount a request body may carry.

A JSON string of ASCII digits with up to four decimals. No sign, exponent,
spaces, NaN, Infinity, non-ASCII digits, empty string or JSON number: Python's
``Decimal`` takes all of these, so the format is checked before any conversion.
"""

import re
from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.money import CREDIT_DECIMAL_PLACES, CREDIT_MAX_DIGITS

AMOUNT_PATTERN = r"^[0-9]+(\.[0-9]{1,4})?$"
_AMOUNT = re.compile(r"[0-9]+(\.[0-9]{1,4})?", re.ASCII)


@extend_schema_field(
    {
        "type": "string",
        "pattern": AMOUNT_PATTERN,
        "description": 'Credits as a string: ASCII digits with up to 4 decimals, e.g. "12.5".',
        "example": "12.5",
    }
)
class AmountField(serializers.DecimalField):
    """A credit amount in a request body; see the module docstring."""

    default_error_messages = {
        "format": 'Send credits as a string of digits with up to 4 decimals, e.g. "12.5".',
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", CREDIT_MAX_DIGITS)
        kwargs.setdefault("decimal_places", CREDIT_DECIMAL_PLACES)
        kwargs.setdefault("coerce_to_string", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> Decimal:
        if not isinstance(data, str) or _AMOUNT.fullmatch(data) is None:
            self.fail("format")
        return super().to_internal_value(data)
