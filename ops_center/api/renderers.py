"""orjson rendering; Decimal amounts go out as strings, never as floats."""

from decimal import Decimal

import orjson
from rest_framework.renderers import BaseRenderer


def json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot render {type(value).__name__}")


class OrjsonRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return orjson.dumps(data, default=json_default, option=orjson.OPT_NON_STR_KEYS)
