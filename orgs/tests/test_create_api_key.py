from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ops_center.api.keys import hash_api_key
from orgs.models import ApiKey
from orgs.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_prints_a_key_that_is_stored_hashed_for_the_user():
    user = UserFactory(username="alice")
    out, err = StringIO(), StringIO()

    call_command("create_api_key", "alice", "--name", "laptop", stdout=out, stderr=err)

    raw_key = out.getvalue().strip()
    stored = ApiKey.objects.get(key_hash=hash_api_key(raw_key))
    assert (stored.user, stored.name, stored.revoked_at) == (user, "laptop", None)
    assert raw_key.startswith(f"oc_{stored.prefix}_")
    assert raw_key not in err.getvalue()


def test_each_call_issues_a_new_key():
    UserFactory(username="alice")

    keys = {_create_key("alice") for _ in range(2)}

    assert len(keys) == 2
    assert ApiKey.objects.filter(user__username="alice").count() == 2


def test_unknown_user_is_refused_and_nothing_is_stored():
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        _create_key("ghost")

    assert not ApiKey.objects.exists()


def _create_key(username: str) -> str:
    out = StringIO()
    call_command("create_api_key", username, stdout=out, stderr=StringIO())
    return out.getvalue().strip()
