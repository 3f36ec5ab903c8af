"""Path converters. ``<id:name>`` is every id in a URL: 1 to 2**63 - 1, ASCII digits.

Django's ``<int:...>`` takes any length of digits, so an id past the 64-bit
range reached the database and came back as a 500. Here it never matches:
the URL resolves to nothing and the caller gets the usual JSON 404.
"""

from django.urls import register_converter

MAX_ID = 2**63 - 1  # PostgreSQL bigint, the widest id column


class IdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= MAX_ID:
            raise ValueError(f"id out of range: {value}")
        return number

    def to_url(self, value) -> str:
        return str(int(value))


register_converter(IdConverter, "id")

# The schema of a path id, for drf-spectacular (which cannot see into a custom converter).
ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
