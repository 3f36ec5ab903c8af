"""API-key authentication: cached principals, and revocation or deactivation that takes effect at once."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from billing.services import credits_purchase
from ops_center import cache
from ops_center.api.keys import hash_api_key, principal_cache_key
from ops_center.tests.api_support import assert_error
from orgs.models import ApiKey
from orgs.services import api_key_create, api_key_revoke
from orgs.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

BALANCE = "/api/v1/credits/balance"


def key_of(client) -> ApiKey:
    return ApiKey.objects.get(key_hash=hash_api_key(client.raw_key))


def cached_principal(client):
    return cache.get_value("user_tier", f"apikey_{hash_api_key(client.raw_key)}")


def test_a_valid_key_authenticates_as_its_user(user_api, user):
    credits_purchase(user=user, credits=Decimal("7"))

    response = user_api.get(BALANCE)

    assert response.status_code == 200
    assert response.json()["balance"] == "7.0000"  # the key's user, not anyone else's


def test_each_key_sees_its_own_user(api, user):
    credits_purchase(user=user, credits=Decimal("7"))
    other = UserFactory()
    credits_purchase(user=other, credits=Decimal("3"))
    _, other_key = api_key_create(user=other, name="other")
    api.as_user(user)

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")

    assert api.get(BALANCE).json()["balance"] == "3.0000"


def test_second_request_with_a_cached_principal_and_balance_makes_no_query(user_api, django_assert_num_queries):
    assert cached_principal(user_api) is None
    first = user_api.get(BALANCE)
    assert first.status_code == 200
    assert cached_principal(user_api) is not None

    with django_assert_num_queries(0):
        second = user_api.get(BALANCE)

    assert second.status_code == 200
    assert second["X-Cache"] == "HIT"
    assert second.json() == first.json()


def test_last_used_at_is_set_by_the_first_request(user_api):
    api_key = key_of(user_api)
    assert api_key.last_used_at is None
    before = timezone.now()

    assert user_api.get(BALANCE).status_code == 200

    api_key.refresh_from_db()
    assert api_key.last_used_at is not None
    assert before <= api_key.last_used_at <= timezone.now()


@pytest.mark.django_db(transaction=True)
def test_revoking_a_cached_key_makes_the_next_request_401(user_api):
    assert user_api.get(BALANCE).status_code == 200
    assert cached_principal(user_api) is not None

    api_key_revoke(api_key=key_of(user_api))

    response = user_api.get(BALANCE)
    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert_error(
        user_api.post("/api/v1/credits/usage", {"service": "embedding", "units": 1}, format="json"),
        401,
        "authentication_failed",
    )


@pytest.mark.django_db(transaction=True)
def test_revoking_in_a_transaction_that_rolls_back_keeps_the_key_working(user_api):
    assert user_api.get(BALANCE).status_code == 200

    def revoke_then_fail():
        with transaction.atomic():
            api_key_revoke(api_key=key_of(user_api))
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError, match="roll back"):
        revoke_then_fail()

    assert key_of(user_api).revoked_at is None
    assert cached_principal(user_api) is not None  # a rollback evicts nothing
    assert user_api.get(BALANCE).status_code == 200
    cache.delete_keys([principal_cache_key(hash_api_key(user_api.raw_key))])
    assert user_api.get(BALANCE).status_code == 200  # and from the database too


@pytest.mark.django_db(transaction=True)
def test_a_revoked_key_is_401_even_when_never_cached(user_api):
    api_key_revoke(api_key=key_of(user_api))

    assert_error(user_api.get(BALANCE), 401, "authentication_failed")


@pytest.mark.django_db(transaction=True)
def test_deactivating_the_user_makes_a_cached_key_401_at_once(user_api, user):
    assert user_api.get(BALANCE).status_code == 200
    assert cached_principal(user_api) is not None

    user.is_active = False
    user.save()

    assert_error(user_api.get(BALANCE), 401, "authentication_failed")


@pytest.mark.django_db(transaction=True)
def test_revoking_one_key_leaves_the_users_other_keys_working(api, user):
    _, other_raw_key = api_key_create(user=user, name="second")
    api.as_user(user)
    assert api.get(BALANCE).status_code == 200

    api_key_revoke(api_key=key_of(api))

    assert_error(api.get(BALANCE), 401, "authentication_failed")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {other_raw_key}")
    assert api.get(BALANCE).status_code == 200


def test_session_authentication_works_with_force_login(api, user):
    credits_purchase(user=user, credits=Decimal("5"))
    api.force_login(user)

    response = api.get(BALANCE)

    assert response.status_code == 200
    assert response.json()["balance"] == "5.0000"


def test_session_authentication_works_with_a_password_login(api, user):
    assert api.login(username=user.username, password="pass-for-tests")

    assert api.get(BALANCE).status_code == 200
    api.logout()
    assert_error(api.get(BALANCE), 401, "not_authenticated")


def test_a_staff_session_reaches_the_admin(client):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)

    response = client.get("/admin/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
