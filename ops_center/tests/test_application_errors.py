"""Services refuse with DRF-free ApplicationErrors; only the API layer turns them into HTTP."""

import pytest
from django.apps import apps
from rest_framework.exceptions import APIException

from billing.errors import InsufficientCredits, InvalidAdjustment, PoolExhausted
from ops_center.api.errors import exception_handler
from ops_center.errors import ApplicationError
from orgs.errors import OrgNotFound


@pytest.mark.parametrize(
    ("refusal", "status"),
    [
        (InvalidAdjustment(code="adjustment_is_zero"), 400),
        (InsufficientCredits(details={"shortfall": "1.0000"}), 402),
        (OrgNotFound(), 404),
        (PoolExhausted(), 409),
    ],
)
def test_each_refusal_answers_its_status_in_the_one_error_shape(refusal, status):
    response = exception_handler(refusal, {})

    assert response.status_code == status
    assert response.data == {"error": {"code": refusal.code, "message": refusal.message, "details": refusal.details}}


def _subclasses(cls):
    for subclass in cls.__subclasses__():
        yield subclass
        yield from _subclasses(subclass)


def test_no_domain_refusal_is_an_http_exception():
    apps.get_app_configs()  # every app's errors are imported by now
    refusals = list(_subclasses(ApplicationError))

    assert len(refusals) > 10
    assert [cls for cls in refusals if issubclass(cls, APIException)] == []
