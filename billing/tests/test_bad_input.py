"""Bad input gets a clear 4xx JSON error and writes nothing: the database is compared before and after."""

import json
from decimal import Decimal

import pytest

from billing.api.fields import AMOUNT_PATTERN
from billing.models import (
    CreditAccount,
    CreditAllocation,
    CreditPool,
    CreditTransaction,
    Invoice,
    PricingRule,
    UsageDaily,
)
from billing.services import credits_purchase
from billing.tests.factories import CreditAllocationFactory, CreditPoolFactory
from ops_center.api.parsers import MAX_DEPTH
from ops_center.models import IdempotencyRecord
from ops_center.tests.openapi import openapi_schema
from orgs.tests.factories import MembershipFactory

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


# Issue 12, part 4: an amount is a JSON string of ASCII digits with up to 4 decimals, nothing else.
# Each of these used to be taken by Decimal() (Arabic-Indic digits moved money) or was a 500.
BAD_AMOUNTS = [
    ('"\u0661\u0662\u0663"', "arabic-indic-digits"),
    ('"\uff11\uff12"', "fullwidth-digits"),
    ('"1e2"', "exponent"),
    ('"1E2"', "exponent-upper"),
    ('" 10 "', "spaces"),
    ('"10 "', "trailing-space"),
    ('"10\\n"', "trailing-newline"),
    ('"+10"', "plus-sign"),
    ('"-10"', "minus-sign"),
    ('"NaN"', "nan"),
    ('"Infinity"', "infinity"),
    ('""', "empty"),
    ('"10."', "bare-point"),
    ('".5"', "no-integer-part"),
    ('"1.00000"', "five-decimals"),
    ('"1,5"', "comma"),
    ('"1_000"', "underscore"),
    ('"0x10"', "hex"),
    ("10", "json-integer"),
    ("12.5", "json-fraction"),
    ("1e2", "json-exponent"),
    ("true", "boolean"),
    ("null", "null"),
    ('["10"]', "array"),
]


@pytest.mark.parametrize(("amount", "label"), BAD_AMOUNTS, ids=[label for _, label in BAD_AMOUNTS])
@pytest.mark.parametrize(
    ("path", "template"),
    [
        (USAGE, '{"service": "embedding", "units": 1, "credits": %s}'),
        (PURCHASES, '{"credits": %s}'),
    ],
    ids=["usage", "purchase"],
)
def test_an_amount_outside_the_strict_format_is_400_naming_the_field(funded_api, path, template, amount, label):
    before = database_state()

    response = post_raw(funded_api, path, template % amount)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "credits" in error["details"], error
    assert database_state() == before


@pytest.mark.parametrize("amount", ['"10"', '"0010"', '"2.5"', '"2.5000"'])
def test_an_amount_in_the_strict_format_is_accepted(funded_api, amount):
    response = post_raw(funded_api, USAGE, '{"service": "embedding", "units": 1, "credits": ' + amount + "}")

    assert response.status_code == 201, response.content


def test_the_schema_pattern_is_the_one_the_field_enforces():
    schemas = openapi_schema()["components"]["schemas"]
    for name, field in [("PurchaseInput", "credits"), ("UsageInput", "credits"), ("AllocationIn", "credits")]:
        prop = schemas[name]["properties"][field]
        assert prop["type"] == "string"
        assert prop["pattern"] == AMOUNT_PATTERN == r"^[0-9]+(\.[0-9]{1,4})?$"


# Issue 12, part 3: ids past the 64-bit range (or not positive) in bodies are a 400, never a 500.
@pytest.mark.parametrize(
    "org_id",
    [str(2**63), str(2**64), str(10**30), "0", "-1", "true", '"1 "', '"٣"', "1.5", "1e400"],
)
def test_an_org_id_out_of_range_in_a_body_is_400_and_writes_nothing(funded_api, org_id):
    before = database_state()

    response = post_raw(funded_api, USAGE, '{"service": "embedding", "units": 1, "org_id": ' + org_id + "}")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in ("validation_error", "malformed_request")
    assert database_state() == before


@pytest.mark.parametrize("units", ['"1_000"', '" 5 "', '"\u0665"', "true", "1.5", "1e400", "-1e400"])
def test_units_that_int_would_take_are_400(funded_api, units):
    before = database_state()

    response = post_raw(funded_api, USAGE, '{"service": "embedding", "units": ' + units + "}")

    assert response.status_code == 400, response.content
    assert "units" in response.json()["error"]["details"]
    assert database_state() == before


def test_an_integer_past_64_bits_anywhere_in_a_body_is_400(funded_api):
    """Even in a field nobody reads: the idempotency fingerprint (orjson) cannot encode one."""
    before = database_state()

    response = post_raw(funded_api, USAGE, f'{{"service": "embedding", "units": 1, "extra": {2**64}}}')

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "malformed_request"
    assert database_state() == before


@pytest.mark.parametrize("depth", [33, 1000, 5000])
def test_json_nested_too_deep_is_400_and_writes_nothing(funded_api, depth):
    body = '{"service": "embedding", "units": 1, "extra": ' + "[" * depth + "]" * depth + "}"
    before = database_state()

    response = post_raw(funded_api, USAGE, body)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "malformed_request"
    assert database_state() == before


def test_json_nested_to_the_limit_is_parsed(funded_api):
    body = '{"service": "embedding", "units": 1, "extra": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"

    assert post_raw(funded_api, USAGE, body).status_code == 201


def test_a_body_that_is_not_utf8_is_400(funded_api):
    before = database_state()

    response = funded_api.post(
        USAGE,
        data='{"service": "embedding", "units": 1, "description": "caf\xe9"}'.encode("latin-1"),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="bad-input",
    )

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "malformed_request"
    assert database_state() == before


@pytest.fixture
def org_admin_api(api):
    pool = CreditPoolFactory(total_credits=Decimal("1000"), allocated_credits=Decimal("0"))
    admin = MembershipFactory(org=pool.org, role="admin")
    member = MembershipFactory(org=pool.org, role="member")
    api.as_user(admin.user)
    api.org_id, api.member_id = pool.org_id, member.user_id
    return api


def allocation_state():
    return (
        list(CreditPool.objects.values_list("org_id", "allocated_credits")),
        list(CreditAllocation.objects.values_list("user_id", "allocated_credits")),
        database_state(),
    )


@pytest.mark.parametrize(("amount", "label"), BAD_AMOUNTS, ids=[label for _, label in BAD_AMOUNTS])
def test_an_allocation_outside_the_strict_format_is_400_naming_the_field(org_admin_api, amount, label):
    path = f"/api/v1/org-billing/organizations/{org_admin_api.org_id}/credit-pool/allocations"
    before = allocation_state()

    response = post_raw(org_admin_api, path, f'{{"user_id": {org_admin_api.member_id}, "credits": {amount}}}')

    assert response.status_code == 400, response.content
    assert "credits" in response.json()["error"]["details"]
    assert allocation_state() == before


@pytest.mark.parametrize("user_id", [str(2**63), str(2**64), "0", "-5", '"7"x'])
def test_an_allocation_to_a_user_id_out_of_range_is_400(org_admin_api, user_id):
    path = f"/api/v1/org-billing/organizations/{org_admin_api.org_id}/credit-pool/allocations"
    before = allocation_state()

    response = post_raw(org_admin_api, path, '{"user_id": ' + user_id + ', "credits": "5"}')

    assert response.status_code == 400, response.content
    assert allocation_state() == before


@pytest.mark.parametrize("org_id", [str(2**63), str(2**64), "18446744073709551616", "0", "00", "-1", "1e3", "٣"])
def test_an_org_id_out_of_range_in_a_write_path_is_404_and_writes_nothing(org_admin_api, org_id):
    before = allocation_state()

    response = post_raw(
        org_admin_api,
        f"/api/v1/org-billing/organizations/{org_id}/credit-pool/allocations",
        f'{{"user_id": {org_admin_api.member_id}, "credits": "5"}}',
    )

    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"
    assert allocation_state() == before
