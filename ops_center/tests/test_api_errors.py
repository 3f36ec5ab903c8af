"""Every API error is one JSON envelope, {"error": {"code", "message", "details"}}, never HTML or a traceback."""

import json
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from billing.models import CreditAccount, CreditTransaction, UsageDaily
from billing.services import credits_purchase
from ops_center.api.throttling import WriteRateThrottle
from ops_center.models import IdempotencyRecord
from ops_center.tests.api_support import SchemaCheckedClient, assert_error
from ops_center.tests.database import database_unreachable
from ops_center.tests.urls_with_failing_view import SECRET_FAILURE_TEXT
from orgs.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

USAGE = "/api/v1/credits/usage"
BALANCE = "/api/v1/credits/balance"
TRANSACTIONS = "/api/v1/credits/transactions"


def fund(user, credits: str = "100") -> None:
    credits_purchase(user=user, credits=Decimal(credits))


# 400


@pytest.mark.parametrize(
    "raw_body",
    [
        '{"service": "embedding", "units": ',
        "{'service': 'embedding'}",
        '{"service": "embedding", "units": 1, "credits": NaN}',
        '{"service": "embedding", "units": 1, "credits": Infinity}',
        "\xff\xfe not utf-8",
    ],
    ids=["truncated", "single-quotes", "nan", "infinity", "not-utf8"],
)
def test_malformed_json_is_400_malformed_request_and_writes_nothing(user_api, user, raw_body):
    fund(user)
    rows_before = CreditTransaction.objects.count()

    response = user_api.post(USAGE, raw_body.encode("latin-1"), content_type="application/json")

    assert_error(response, 400, "malformed_request")
    assert CreditTransaction.objects.count() == rows_before


def test_validation_error_is_400_with_field_details(user_api):
    response = user_api.post(USAGE, {"service": "not a slug!", "units": 0}, format="json")

    error = assert_error(response, 400, "validation_error")
    assert set(error["details"]) == {"service", "units"}
    for field in ("service", "units"):
        messages = error["details"][field]
        assert isinstance(messages, list)
        assert messages
        assert all(isinstance(message, str) and message for message in messages)


def test_missing_required_fields_are_named_in_details(user_api):
    error = assert_error(user_api.post(USAGE, {}, format="json"), 400, "validation_error")

    assert set(error["details"]) == {"service", "units"}


def test_a_json_body_that_is_not_an_object_is_a_validation_error(user_api):
    error = assert_error(user_api.post(USAGE, [1, 2], format="json"), 400, "validation_error")

    assert "non_field_errors" in error["details"]


def test_invalid_query_parameter_is_400_with_field_details(user_api):
    error = assert_error(user_api.get(f"{TRANSACTIONS}?transaction_type=bogus"), 400, "validation_error")

    assert list(error["details"]) == ["transaction_type"]


# 401


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", BALANCE), ("get", TRANSACTIONS), ("post", USAGE)],
)
def test_no_authorization_header_is_401_with_www_authenticate(api, method, path):
    response = getattr(api, method)(path, {"service": "embedding", "units": 1} if method == "post" else None)

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer oc_deadbeef_not-a-real-key",
        "Bearer ",
        "Bearer",
        "bearer two parts",
    ],
    ids=["unknown-key", "bearer-space-only", "bearer-alone", "too-many-parts"],
)
def test_bad_bearer_header_is_401_authentication_failed(api, header):
    api.credentials(HTTP_AUTHORIZATION=header)

    response = api.get(BALANCE)

    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_another_auth_scheme_is_401_not_authenticated(api):
    api.credentials(HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")

    response = api.get(BALANCE)

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_bad_key_on_a_write_writes_nothing(api, user):
    fund(user)
    rows_before = CreditTransaction.objects.count()
    api.credentials(HTTP_AUTHORIZATION="Bearer oc_deadbeef_not-a-real-key")

    response = api.post(USAGE, {"service": "embedding", "units": 1}, format="json")

    assert_error(response, 401, "authentication_failed")
    assert CreditTransaction.objects.count() == rows_before


# 403


def test_session_write_without_csrf_token_is_403_and_writes_nothing(user):
    client = SchemaCheckedClient(enforce_csrf_checks=True)
    client.force_login(user)
    rows_before = CreditTransaction.objects.count()

    response = client.post(USAGE, {"service": "embedding", "units": 1}, format="json")

    error = assert_error(response, 403, "permission_denied")
    assert "CSRF" in error["message"]
    assert CreditTransaction.objects.count() == rows_before


# 404


@pytest.mark.parametrize(
    "path",
    ["/api/v1/nope", "/api/v1/credits/nope", "/api/v1/credits/balance/extra", "/api/v2/credits/balance", "/api/"],
)
def test_unknown_api_path_is_json_404(api, path):
    assert_error(api.get(path), 404, "not_found")


def test_unknown_api_path_is_json_404_for_an_authenticated_caller_and_any_method(user_api):
    assert_error(user_api.get("/api/v1/nope"), 404, "not_found")
    assert_error(user_api.post("/api/v1/nope", {"a": 1}, format="json"), 404, "not_found")


@pytest.mark.parametrize("path", ["/nope", "/apix/v1/credits/balance", "/static-nope/thing.js"])
def test_non_api_404_is_django_html_not_our_json(api, path):
    response = api.get(path)

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b'"error"' not in response.content


# 405


def test_unsupported_method_is_405_method_not_allowed(api, user):
    client = api
    client.force_authenticate(user=user)

    response = client.delete(BALANCE)

    error = assert_error(response, 405, "method_not_allowed")
    assert "DELETE" in error["message"]
    assert "GET" in response["Allow"]


def test_unsupported_method_with_an_api_key_is_405(user_api):
    assert_error(user_api.put(USAGE, {"service": "embedding"}, format="json"), 405, "method_not_allowed")


# 413


def padded_usage_body(size: int) -> bytes:
    """A valid usage request padded with JSON whitespace to exactly ``size`` bytes."""
    base = json.dumps({"service": "embedding", "units": 1, "credits": "1"}).encode()
    assert len(base) <= size
    return base + b" " * (size - len(base))


@pytest.mark.parametrize("over_by", [1, 1000, None], ids=["one-byte", "1000-bytes", "over-upload-limit"])
def test_body_over_the_limit_is_413_and_writes_nothing(user_api, user, over_by):
    fund(user)
    limit = settings.API_MAX_BODY_BYTES
    size = limit + over_by if over_by is not None else settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1
    rows_before = CreditTransaction.objects.count()

    response = user_api.post(
        USAGE, padded_usage_body(size), content_type="application/json", HTTP_IDEMPOTENCY_KEY="big-body"
    )

    error = assert_error(response, 413, "request_too_large")
    assert error["details"] == {"limit_bytes": limit}
    assert CreditTransaction.objects.count() == rows_before
    assert CreditAccount.objects.get(user=user).balance == Decimal("100")
    assert not IdempotencyRecord.objects.exists()
    assert not UsageDaily.objects.exists()


def test_body_of_exactly_the_limit_is_accepted(user_api, user):
    fund(user)

    response = user_api.post(USAGE, padded_usage_body(settings.API_MAX_BODY_BYTES), content_type="application/json")

    assert response.status_code == 201, response.content[:300]
    assert response.json()["balance"] == "99.0000"


# 415


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", "service=embedding"),
        ("application/x-www-form-urlencoded", "service=embedding&units=1"),
        ("application/xml", "<usage><service>embedding</service></usage>"),
    ],
)
def test_non_json_content_type_is_415_and_writes_nothing(user_api, user, content_type, body):
    fund(user)
    rows_before = CreditTransaction.objects.count()

    response = user_api.post(USAGE, body, content_type=content_type)

    error = assert_error(response, 415, "unsupported_media_type")
    assert content_type in error["message"]
    assert CreditTransaction.objects.count() == rows_before


# 422


def test_idempotency_key_reused_with_a_different_body_is_422(user_api, user):
    fund(user)
    first = user_api.post(
        USAGE, {"service": "embedding", "units": 1, "credits": "2"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert first.status_code == 201

    response = user_api.post(
        USAGE, {"service": "embedding", "units": 1, "credits": "3"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )

    error = assert_error(response, 422, "idempotency_key_reused")
    assert error["details"] == {"idempotency_key": "k-1"}
    assert CreditAccount.objects.get(user=user).balance == Decimal("98")
    assert CreditTransaction.objects.filter(user=user, transaction_type="usage").count() == 1


def test_idempotency_key_reused_on_another_endpoint_is_422(user_api, user):
    fund(user)
    assert (
        user_api.post(
            USAGE, {"service": "embedding", "units": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k-2"
        ).status_code
        == 201
    )

    response = user_api.post("/api/v1/credits/purchases", {"credits": "5"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")

    assert_error(response, 422, "idempotency_key_reused")
    assert CreditTransaction.objects.filter(user=user, transaction_type="purchase").count() == 1


# 429


@pytest.fixture
def two_writes_per_minute(monkeypatch):
    monkeypatch.setattr(WriteRateThrottle, "THROTTLE_RATES", {"writes": "2/min"})


@pytest.mark.usefixtures("two_writes_per_minute")
def test_third_write_in_a_minute_is_429_with_retry_after(user_api, user):
    fund(user)
    body = {"service": "embedding", "units": 1, "credits": "1"}

    assert user_api.post(USAGE, body, format="json").status_code == 201
    assert user_api.post(USAGE, body, format="json").status_code == 201
    response = user_api.post(USAGE, body, format="json")

    error = assert_error(response, 429, "throttled")
    retry_after = error["details"]["retry_after_seconds"]
    assert isinstance(retry_after, int)
    assert 0 < retry_after <= 60
    assert int(response["Retry-After"]) == retry_after
    assert CreditAccount.objects.get(user=user).balance == Decimal("98")


@pytest.mark.usefixtures("two_writes_per_minute")
def test_reads_are_not_throttled_and_other_users_keep_their_own_budget(api, user_api, user):
    fund(user)
    body = {"service": "embedding", "units": 1, "credits": "1"}
    for _ in range(2):
        assert user_api.post(USAGE, body, format="json").status_code == 201
    assert_error(user_api.post(USAGE, body, format="json"), 429, "throttled")

    for _ in range(5):
        assert user_api.get(BALANCE).status_code == 200
        assert user_api.get(TRANSACTIONS).status_code == 200

    other = UserFactory()
    fund(other)
    other_api = APIClient()
    other_api.force_authenticate(user=other)
    assert other_api.post(USAGE, body, format="json").status_code == 201


# 500


@pytest.mark.urls("ops_center.tests.urls_with_failing_view")
@pytest.mark.parametrize("path", ["/api/v1/boom", "/api/v1/plain-boom"])
def test_unhandled_exception_under_api_is_json_500_without_the_exception_text(api, path):
    api.raise_request_exception = False

    response = api.get(path)

    assert_error(response, 500, "server_error")
    assert SECRET_FAILURE_TEXT not in response.content.decode()
    assert "RuntimeError" not in response.content.decode()


@pytest.mark.urls("ops_center.tests.urls_with_failing_view")
def test_unhandled_exception_on_a_write_is_json_500(user_api):
    user_api.raise_request_exception = False

    response = user_api.post("/api/v1/boom", {"a": 1}, format="json")

    assert_error(response, 500, "server_error")
    assert SECRET_FAILURE_TEXT not in response.content.decode()


@pytest.mark.urls("ops_center.tests.urls_with_failing_view")
def test_the_failing_urlconf_still_serves_the_real_api(user_api):
    assert user_api.get(BALANCE).status_code == 200
    assert_error(user_api.get("/api/v1/nope"), 404, "not_found")


@pytest.mark.urls("ops_center.tests.urls_with_failing_view")
def test_unhandled_exception_outside_api_is_django_html_500(api):
    api.raise_request_exception = False

    response = api.get("/plain-boom")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert SECRET_FAILURE_TEXT not in response.content.decode()


# 503


def assert_503_without_leaks(response, saved_settings: dict) -> None:
    assert_error(response, 503, "service_unavailable")
    assert response["Retry-After"] == "5"
    text = response.content.decode()
    for leaked in ("OperationalError", "psycopg", "refused", saved_settings["NAME"]):
        assert leaked not in text


@pytest.mark.postgresql_only("points the connection at a closed PostgreSQL port")
@pytest.mark.django_db(transaction=True)
def test_unreachable_database_is_json_503(user_api):
    cache.clear()  # the key's principal must come from the database
    with database_unreachable() as saved:
        response = user_api.get(TRANSACTIONS)

    assert_503_without_leaks(response, saved)
    assert user_api.get(TRANSACTIONS).status_code == 200  # and it recovers once the database is back


@pytest.mark.postgresql_only("points the connection at a closed PostgreSQL port")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", TRANSACTIONS, None),
        ("get", "/api/v1/credits/usage/summary", None),
        ("post", USAGE, {"service": "embedding", "units": 1, "credits": "1"}),
        ("post", "/api/v1/credits/purchases", {"credits": "5"}),
    ],
)
def test_unreachable_database_after_authentication_is_json_503(user_api, user, method, path, body):
    fund(user)
    assert user_api.get(BALANCE).status_code == 200  # the principal is cached now
    rows_before = CreditTransaction.objects.count()

    with database_unreachable() as saved:
        response = getattr(user_api, method)(path, body, format="json", HTTP_IDEMPOTENCY_KEY="db-down")

    assert_503_without_leaks(response, saved)
    assert CreditTransaction.objects.count() == rows_before
    assert not IdempotencyRecord.objects.exists()


# Issue 12, part 3: an id past the 64-bit range (or not positive) in a URL path is a JSON 404, never a 500.
ORG_PATHS = ["subscription", "credit-pool", "allocation", "members/usage"]


@pytest.mark.parametrize("org_id", [str(2**63), "18446744073709551616", "9" * 40, "0", "-1", "1.0", "\u0663"])
@pytest.mark.parametrize("tail", ORG_PATHS)
def test_an_org_id_out_of_range_in_the_path_is_json_404(user_api, org_id, tail):
    assert_error(user_api.get(f"/api/v1/org-billing/organizations/{org_id}/{tail}"), 404, "not_found")


def test_the_largest_id_resolves_and_is_an_ordinary_not_found(user_api):
    response = user_api.get(f"/api/v1/org-billing/organizations/{2**63 - 1}/subscription")

    assert response.status_code == 404
    assert set(response.json()["error"]) == {"code", "message", "details"}


# Issue 12, part 4: a query parameter is refused unless the schema allows its value, and
# accepted whenever it does: "?days=" is an empty value, not a missing one.
ANALYTICS_TRENDS = "/api/v1/org-billing/analytics/revenue-trends"
SUMMARY = "/api/v1/credits/usage/summary"


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        (SUMMARY, "days=false", "days"),
        (SUMMARY, "days=true", "days"),
        (SUMMARY, "days=", "days"),
        (SUMMARY, "days=1.0", "days"),
        (SUMMARY, "days=%205", "days"),
        (SUMMARY, "days=+5", "days"),
        (SUMMARY, "days=1_0", "days"),
        (SUMMARY, "days=%D9%A3", "days"),  # Arabic-Indic three
        (SUMMARY, "days=0", "days"),
        (SUMMARY, f"days={2**64}", "days"),
        (TRANSACTIONS, "limit=", "limit"),
        (TRANSACTIONS, f"limit={2**63}", "limit"),
        (TRANSACTIONS, "cursor=", "cursor"),
        (TRANSACTIONS, "transaction_type=", "transaction_type"),
        (TRANSACTIONS, "created_after=", "created_after"),
        (TRANSACTIONS, "created_after=yesterday", "created_after"),
    ],
)
def test_a_query_value_the_schema_refuses_is_400_naming_the_parameter(user_api, path, params, field):
    error = assert_error(user_api.get(f"{path}?{params}"), 400, "validation_error")

    assert field in error["details"], error


@pytest.fixture
def staff_api(api):
    return api.as_user(UserFactory(is_staff=True))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ("interval=", "interval"),
        ("interval=year", "interval"),
        ("periods=", "periods"),
        ("periods=false", "periods"),
        ("currency=", "currency"),
        ("currency=USD%0A", "currency"),
        ("currency=usd", "currency"),
    ],
)
def test_a_trends_query_value_the_schema_refuses_is_400(staff_api, params, field):
    error = assert_error(staff_api.get(f"{ANALYTICS_TRENDS}?{params}"), 400, "validation_error")

    assert field in error["details"], error


@pytest.mark.parametrize(
    ("params", "field"),
    [("plan=", "plan"), ("plan=pro%0A", "plan"), ("status=", "status"), ("limit=0", "limit"), ("cursor=", "cursor")],
)
def test_a_subscriptions_query_value_the_schema_refuses_is_400(staff_api, params, field):
    error = assert_error(staff_api.get(f"/api/v1/org-billing/subscriptions?{params}"), 400, "validation_error")

    assert field in error["details"], error


@pytest.mark.parametrize("params", ["days=1", "days=366", "days=007", "limit=100&days=30"])
def test_query_values_the_schema_allows_are_accepted(user_api, params):
    assert user_api.get(f"{SUMMARY}?{params}").status_code == 200
