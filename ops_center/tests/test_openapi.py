"""The OpenAPI document is valid, complete for /api/v1/credits/, and its docs page needs no CDN."""

import json
from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from openapi_spec_validator import validate

from billing.api.urls import urlpatterns as credit_urlpatterns

pytestmark = pytest.mark.django_db

SCHEMA = "/api/v1/schema/"
DOCS = "/api/v1/docs/"
READ_ERRORS = {"400", "401", "503"}
WRITE_ERRORS = {"400", "401", "402", "404", "413", "415", "422", "429", "503"}
CDN_MARKERS = ("cdn.jsdelivr", "unpkg", "cdnjs", "googleapis")


def credit_paths() -> list[str]:
    return [f"/api/v1/{pattern.pattern}" for pattern in credit_urlpatterns]


@pytest.fixture
def served_schema(api) -> dict:
    response = api.get(SCHEMA, {"format": "json"})
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return response.json()


def test_schema_endpoint_serves_a_valid_openapi_3_document(served_schema):
    assert served_schema["openapi"].startswith("3.")
    validate(served_schema)


def test_schema_is_also_served_by_accept_header(api, served_schema):
    response = api.get(SCHEMA, HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    assert response.json() == served_schema


def test_served_schema_is_the_generated_one(served_schema, tmp_path):
    """What /api/v1/schema/ serves is exactly what `manage.py spectacular` writes for clients to generate from,
    and that is valid and generated without a warning."""
    written = tmp_path / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(written), "--validate", "--fail-on-warn")
    generated = json.loads(written.read_text())

    assert set(generated["paths"]) >= set(credit_paths())
    assert served_schema == generated


def test_every_credits_path_is_documented(served_schema):
    documented = {path for path in served_schema["paths"] if path.startswith("/api/v1/credits/")}

    assert documented == set(credit_paths())


def test_bearer_security_scheme_exists_and_guards_every_credits_operation(served_schema):
    schemes = served_schema["components"]["securitySchemes"]
    bearer = [name for name, scheme in schemes.items() if scheme == {**scheme, "type": "http", "scheme": "bearer"}]
    assert bearer, schemes

    for path in credit_paths():
        for method, operation in served_schema["paths"][path].items():
            names = {
                name
                for requirement in operation.get("security", served_schema.get("security", []))
                for name in requirement
            }
            assert set(bearer) & names, f"{method.upper()} {path} is not guarded by the bearer scheme"
            assert {} not in operation.get("security", []), f"{method.upper()} {path} allows anonymous access"


def test_every_credits_operation_documents_its_error_responses(served_schema):
    error_ref = "#/components/schemas/Error"
    assert "Error" in served_schema["components"]["schemas"]

    for path in credit_paths():
        for method, operation in served_schema["paths"][path].items():
            responses = operation["responses"]
            where = f"{method.upper()} {path}"
            assert "401" in responses, where
            if method == "post":
                assert set(responses) >= WRITE_ERRORS, where
            elif path != "/api/v1/credits/packages":
                assert set(responses) >= READ_ERRORS, where
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    body = response["content"]["application/json"]["schema"]
                    assert body == {"$ref": error_ref}, where
                    assert response.get("description"), where


def test_error_envelope_schema_has_code_message_and_details(served_schema):
    schemas = served_schema["components"]["schemas"]
    envelope = schemas["Error"]
    assert envelope["required"] == ["error"]
    body_ref = envelope["properties"]["error"]["$ref"]
    body = schemas[body_ref.rsplit("/", 1)[-1]]
    assert set(body["properties"]) == {"code", "message", "details"}
    assert set(body["required"]) == {"code", "message", "details"}
    assert body["properties"]["details"]["type"] == "object"


class AssetCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.assets: list[str] = []
        self.script_count = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.script_count += 1
            if attrs.get("src"):
                self.assets.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.assets.append(attrs["href"])


def test_docs_page_is_html_with_local_assets_only(api):
    response = api.get(DOCS)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    for marker in CDN_MARKERS:
        assert marker not in html, marker
    collector = AssetCollector()
    collector.feed(html)
    scripts = [asset for asset in collector.assets if asset.split("?")[0].endswith(".js")]
    assert len(scripts) >= 2, collector.assets
    static_prefix = "/" + settings.STATIC_URL.strip("/") + "/"
    for asset in collector.assets:
        assert not asset.startswith(("http:", "https:", "//")), asset
        assert "http" not in asset, asset
        if asset.startswith(static_prefix):
            assert "drf_spectacular_sidecar" in asset, asset
            assert finders.find(asset[len(static_prefix) :].split("?")[0]), f"{asset} is not a local static file"
        else:
            assert asset.startswith(DOCS), asset  # the view's own init script


def test_docs_page_points_at_the_served_schema(api):
    html = api.get(DOCS).content.decode()

    assert SCHEMA in html
