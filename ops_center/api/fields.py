"""Strict input fields: what the OpenAPI schema documents is exactly what they accept.

* ``StrictIntegerField``: an integer that is a JSON integer in a body or ASCII
  digits in a query string; never ``1_000``, ``" 5 "``, ``"1.0"``, a boolean or
  non-ASCII digits, which ``int()`` would take.
* ``IdField``: a positive id that fits the 64-bit id columns.
* ``QueryParams``: a serializer for query strings in which ``?name=`` is an
  (invalid) empty value, not a parameter left out.
"""

import copy
import re
from decimal import Decimal

from rest_framework import serializers
from rest_framework.fields import empty

from ops_center.api.converters import MAX_ID
from ops_center.api.pagination import DEFAULT_LIMIT, MAX_LIMIT

_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)


class StrictIntegerField(serializers.IntegerField):
    """An integer in a JSON body or a query string; see the module docstring."""

    def to_internal_value(self, data) -> int:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, int):
            return data
        if isinstance(data, Decimal):  # the parser's JSON number with a fraction or exponent: 3.0 is 3
            if not data.is_finite() or data != data.to_integral_value():
                self.fail("invalid")
            if data.adjusted() >= 19:  # never int() of 1e999999: past any bound, the range validators answer
                return 10**19 if data > 0 else -(10**19)
            return int(data)
        if isinstance(data, str) and len(data) <= 40 and _INTEGER.fullmatch(data):
            return int(data)
        self.fail("invalid")


class IdField(StrictIntegerField):
    """A positive id that fits a 64-bit id column."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


class InputSerializer(serializers.Serializer):
    """A request body or query string: flat fields only, validated once per request.

    DRF deep-copies every declared field for each serializer instance, which
    re-runs each field's ``__init__``; on a write that was about a tenth of the
    request's CPU. A flat field keeps no per-request state before it is bound
    (binding sets attributes on the copy; its validators and messages are only
    read), so a shallow copy of each is enough. Nested serializers are refused.
    """

    def get_fields(self):
        fields = {}
        for name, field in self._declared_fields.items():
            if isinstance(field, serializers.BaseSerializer):
                raise TypeError(f"{type(self).__name__}.{name}: an InputSerializer holds flat fields only")
            fields[name] = copy.copy(field)
        return fields


class QueryParams(InputSerializer):
    """Query-string parameters, validated as sent: ``?days=`` is the empty string, refused
    unless the field allows it, as the schema says (DRF would drop it silently)."""

    def __init__(self, instance=None, data=empty, **kwargs):
        if data is not empty and hasattr(data, "getlist"):
            data = data.dict()
        super().__init__(instance, data=data, **kwargs)


class _WholeString(serializers.CharField):
    """Python's ``$`` also matches before a final newline; the schema's (ECMA) ``$`` does not."""

    def to_internal_value(self, data):
        if isinstance(data, str) and data.endswith("\n"):
            self.fail("invalid")
        return super().to_internal_value(data)


class SlugField(_WholeString, serializers.SlugField):
    """DRF's SlugField, refusing a trailing newline as the documented pattern does."""


class RegexField(_WholeString, serializers.RegexField):
    """DRF's RegexField (``^...$`` patterns), refusing a trailing newline as the documented pattern does."""


def limit_field() -> StrictIntegerField:
    """A page size: every paged endpoint takes the same bounds and default."""
    return StrictIntegerField(required=False, min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT)


def cursor_field() -> RegexField:
    """A pagination cursor: what django.core.signing produces (URL-safe base64, ':' and '.'), so
    500 characters are 500 bytes and a documented cursor fits gunicorn's request line."""
    return RegexField(r"^[A-Za-z0-9_.:-]+$", required=False, max_length=500)
