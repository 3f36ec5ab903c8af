"""A JSON parser that never produces a float and enforces the body size limit.

Numbers with a fraction become ``Decimal`` (a float would silently round
money), NaN and Infinity are refused, and a body over
``settings.API_MAX_BODY_BYTES`` is a 413 before it is parsed.
"""

import json
from decimal import Decimal

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from ops_center.api.exceptions import RequestTooLarge


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number this API accepts")


class StrictJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge(f"The request body is over {limit} bytes.", details={"limit_bytes": limit})
        try:
            return json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"Malformed JSON: {exc}") from exc
