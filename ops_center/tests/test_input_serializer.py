"""InputSerializer copies its declared fields shallowly: instances must still never share state."""

import pytest
from rest_framework import serializers

from billing.api.serializers import UsageInput
from ops_center.api.fields import InputSerializer
from ops_center.tests.threads import run_in_threads


def test_each_instance_binds_its_own_copies_and_leaves_the_declared_fields_unbound():
    first, second = UsageInput(data={}), UsageInput(data={})
    assert first.fields["units"] is not second.fields["units"]
    assert first.fields["units"].parent is first
    assert second.fields["units"].parent is second
    assert UsageInput._declared_fields["units"].parent is None
    assert UsageInput._declared_fields["units"].field_name is None


def test_concurrent_validations_keep_their_own_data_and_errors():
    bodies = [
        {"service": "embedding", "units": 5, "credits": "2.5"},
        {"service": "bad service!", "units": 0},
        {"service": "chat", "units": 7},
        {"units": "many"},
    ]

    def validate(thread: int):
        outcomes = []
        for round_ in range(50):
            index = (thread + round_) % len(bodies)
            body = UsageInput(data=bodies[index])
            valid = body.is_valid()
            outcomes.append((index, valid, body.validated_data if valid else body.errors))
        return outcomes

    results = [outcome for outcomes in run_in_threads(16, validate) for outcome in outcomes]

    for index, valid, outcome in results:
        if index == 0:
            assert valid
            assert outcome["units"] == 5
            assert str(outcome["credits"]) == "2.5000"
        elif index == 2:
            assert valid
            assert outcome["service"] == "chat"
        else:
            assert not valid
            assert set(outcome) == {"service", "units"}


def test_a_nested_serializer_is_refused():
    class Nested(InputSerializer):
        inner = UsageInput()

    with pytest.raises(TypeError, match="flat fields only"):
        Nested(data={}).is_valid()


def test_declared_field_validators_are_not_mutated_by_use():
    before = list(UsageInput._declared_fields["units"].validators)
    body = UsageInput(data={"service": "chat", "units": -1})
    assert not body.is_valid()
    assert list(UsageInput._declared_fields["units"].validators) == before
    assert isinstance(UsageInput().fields["description"], serializers.CharField)
