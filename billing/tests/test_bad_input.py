"""Bad input gets a clear 4xx JSON error and writes nothing: the database is compared before and after."""

import json
from decimal import Decimal

import pytest

from billing.models import CreditAccount, CreditTransaction, Invoice, PricingRule, UsageDaily
from billing.services import credits_purchase
from billing.tests.factories import CreditAllocationFactory, CreditPoolFactory
from ops_center.models import IdempotencyRecord

pytestmark = pytest.mark.django_db

USAGE = "/api/v1/credits/usage"
PURCHASES = "/api/v1/credits/purchases"


def database_state():
    return (
        list(CreditAccount.objects.order_by("user_id").values_list("user_id", "balance")),
        CreditTransaction.objects.count(),
        Invoice.objects.count(),
        list(UsageDaily.objects.values_list("credits", flat=True)),
        IdempotencyRecord.objects.count(),
    )


@pytest.fixture
def funded_api(user_api, user):
    credits_purchase(user=user, credits=Decimal("100"))
    return user_api


def post_raw(client, path, body: str, content_type="application/json"):
    return client.post(path, data=body, content_type=content_type, HTTP_IDEMPOTENCY_KEY="bad-input")


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "field"),
    [
        # amounts that are not positive, not finite, too precise or out of range
        (USAGE, '{"service": "embedding", "units": 1, "credits": -5}', 400, "validation_error", "credits"),
        (USAGE, '{"service": "embedding", "units": 1, "credits": 0}', 400, "validation_error", "credits"),
        (USAGE, '{"service": "embedding", "units": 1, "credits": "NaN"}', 400, "validation_error", "credits"),
        (USAGE, '{"service": "embedding", "units": 1, "credits": "Infinity"}', 400, "validation_error", "credits"),
        (USAGE, '{"service": "embedding", "units": 1, "credits": NaN}', 400, "malformed_request", None),
        (USAGE, '{"service": "embedding", "units": 1, "credits": Infinity}', 400, "malformed_request", None),
        (USAGE, '{"service": "embedding", "units": 1, "credits": "1.00001"}', 400, "validation_error", "credits"),
        (USAGE, '{"service": "embedding", "units": 1, "credits": 1.00001}', 400, "validation_error", "credits"),
        (USAGE, '{"service": "embedding", "units": 1, "credits": "1e20"}', 400, "validation_error", "credits"),
        (USAGE, '{"service": "embedding", "units": 0}', 400, "validation_error", "units"),
        (USAGE, '{"service": "embedding", "units": 1e30}', 400, "validation_error", "units"),
        (PURCHASES, '{"credits": "-10"}', 400, "validation_error", "credits"),
        (PURCHASES, '{"credits": "10.5"}', 400, "validation_error", "credits"),
        (PURCHASES, '{"credits": "100000000"}', 400, "validation_error", "credits"),
        # a string where a number belongs, a missing field, both or neither choice
        (USAGE, '{"service": "embedding", "units": "many"}', 400, "validation_error", "units"),
        (USAGE, '{"service": "embedding", "units": 1, "credits": "ten"}', 400, "validation_error", "credits"),
        (USAGE, '{"units": 1}', 400, "validation_error", "service"),
        (USAGE, '{"service": "embedding"}', 400, "validation_error", "units"),
        (PURCHASES, "{}", 400, "validation_error", "non_field_errors"),
        (PURCHASES, '{"package": "credits-1k", "credits": "10"}', 400, "validation_error", "non_field_errors"),
        (USAGE, "[1, 2]", 400, "validation_error", "non_field_errors"),
        # malformed JSON
        (USAGE, '{"service": "embedding", "units": 1', 400, "malformed_request", None),
        (USAGE, "", 400, "validation_error", "service"),
        # unknown package or service
        (PURCHASES, '{"package": "credits-infinite"}', 400, "unknown_package", None),
        (USAGE, '{"service": "teleportation", "units": 1}', 400, "unknown_service", None),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(funded_api, path, body, status, code, field):
    before = database_state()

    response = post_raw(funded_api, path, body)

    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field:
        assert field in error["details"]
    assert database_state() == before


def test_wrong_content_type_is_415_and_writes_nothing(funded_api):
    before = database_state()

    response = post_raw(
        funded_api, USAGE, "service=embedding&units=1", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert database_state() == before


def test_body_over_the_limit_is_413_and_writes_nothing(funded_api, settings):
    before = database_state()
    padding = "x" * settings.API_MAX_BODY_BYTES

    response = post_raw(funded_api, USAGE, json.dumps({"service": "embedding", "units": 1, "description": padding}))

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert database_state() == before


def test_usage_in_an_org_the_caller_is_not_in_writes_nothing(funded_api):
    pool = CreditPoolFactory(total_credits=Decimal("100"), allocated_credits=Decimal("100"))
    CreditAllocationFactory(pool=pool, allocated_credits=Decimal("100"))
    before = database_state()

    response = post_raw(funded_api, USAGE, json.dumps({"service": "embedding", "units": 1, "org_id": pool.org_id}))

    assert response.status_code == 404
    assert database_state() == before


def test_unknown_org_and_foreign_org_answer_alike(funded_api):
    foreign = CreditPoolFactory()
    answers = [
        post_raw(funded_api, USAGE, json.dumps({"service": "embedding", "units": 1, "org_id": org_id})).json()
        for org_id in (foreign.org_id, 987654321)
    ]
    for answer in answers:
        answer["error"]["details"].pop("org_id")
    assert answers[0] == answers[1]


def test_usage_priced_past_the_largest_balance_is_refused(funded_api):
    PricingRule.objects.create(service="gpu-cluster-day", credits_per_unit=Decimal("9999999999"))
    before = database_state()

    response = post_raw(funded_api, USAGE, json.dumps({"service": "gpu-cluster-day", "units": 10**12}))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cost"
    assert database_state() == before
