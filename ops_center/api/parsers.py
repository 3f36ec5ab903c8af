"""A JSON parser that never produces a float and enforces the body size limit.

Numbers with a fraction become ``Decimal`` (a float would silently round
money), NaN and Infinity are refused, and a body over
``settings.API_MAX_BODY_BYTES`` is a 413 before it is parsed. The body must be
UTF-8, nest at most ``MAX_DEPTH`` arrays and objects deep (the standard
library's parser recurses, so 1,000 levels in a few kilobytes used to be a
RecursionError) and hold no integer outside the 64-bit range (nothing here
stores one, and orjson cannot encode one).
"""

import json
import re
from decimal import Decimal

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from ops_center.api.exceptions import RequestTooLarge

MAX_DEPTH = 32
_INT64 = range(-(2**63), 2**63)
# A JSON string (escapes included) or any one character that is not a bracket.
_STRINGS_AND_NON_BRACKETS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[^\[\]{}"]+', re.DOTALL)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number this API accepts")


def _int64(text: str) -> int:
    number = int(text)
    if number not in _INT64:
        raise ValueError(f"the integer {text[:30]} is outside the 64-bit range")
    return number


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in a JSON text, brackets inside strings aside."""
    depth = deepest = 0
    for bracket in _STRINGS_AND_NON_BRACKETS.sub("", text):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif bracket in "]}":
            depth -= 1
    return deepest


class StrictJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge(f"The request body is over {limit} bytes.", details={"limit_bytes": limit})
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"Malformed JSON: the body is not UTF-8 ({exc.reason}).") from exc
        if nesting_depth(text) > MAX_DEPTH:
            raise ParseError(f"Malformed JSON: arrays and objects nest more than {MAX_DEPTH} deep.")
        try:
            return json.loads(text, parse_float=Decimal, parse_int=_int64, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"Malformed JSON: {exc}") from exc
