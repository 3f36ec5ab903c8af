"""Checks API responses in tests against the generated OpenAPI schema."""

import functools
import re
import threading

from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator
from openapi_schema_validator import OAS30Validator

_generation_lock = threading.Lock()


def openapi_schema() -> dict:
    # drf-spectacular's generator is not thread-safe; race tests check responses from many threads.
    with _generation_lock:
        return _generated_schema()


@functools.cache
def _generated_schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _template_of(path: str) -> str:
    route = resolve(path).route
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def assert_matches_schema(method: str, path: str, status_code: int, body) -> None:
    schema = openapi_schema()
    operations = schema["paths"][_template_of(path)]
    if method.lower() not in operations:
        assert status_code == 405, f"{method} {path} is undocumented yet answered {status_code}"
        return
    operation = operations[method.lower()]
    responses = operation["responses"]
    assert str(status_code) in responses, f"{method} {path} answered {status_code}, which the schema does not list"
    content = responses[str(status_code)].get("content", {}).get("application/json")
    if content is None:
        return
    document = {"components": schema.get("components", {}), **content["schema"]}
    OAS30Validator(document).validate(body)
