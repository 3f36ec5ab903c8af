import re

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ops_center.api.keys import hash_api_key
from ops_center.tests.admin_support import admin_url
from orgs.models import ApiKey, Membership, Organization, User
from orgs.tests.factories import ApiKeyFactory, MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

RAW_KEY_PATTERN = re.compile(r"oc_[0-9a-f]{8}_[A-Za-z0-9_-]+")

# model -> factory building one row with its own related rows, so an N+1 shows up.
ADMIN_ROWS = {
    User: UserFactory,
    Organization: OrganizationFactory,
    Membership: MembershipFactory,
    ApiKey: ApiKeyFactory,
}


def changelist_query_count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_every_orgs_model_is_registered_and_covered_here():
    models = set(apps.get_app_config("orgs").get_models())

    assert {model for model in models if not admin.site.is_registered(model)} == set()
    assert models == set(ADMIN_ROWS)


@pytest.mark.parametrize("model", ADMIN_ROWS, ids=lambda model: model.__name__)
def test_changelist_and_change_page_load(admin_client, model):
    row = ADMIN_ROWS[model]()

    changelist = admin_client.get(admin_url(model, "changelist"))
    change_page = admin_client.get(admin_url(model, "change", row.pk))

    assert changelist.status_code == 200
    assert row in changelist.context["cl"].result_list
    assert change_page.status_code == 200
    assert change_page.context["original"] == row


@pytest.mark.parametrize("model", ADMIN_ROWS, ids=lambda model: model.__name__)
def test_changelist_query_count_does_not_grow_with_rows(admin_client, model):
    url = admin_url(model, "changelist")
    ADMIN_ROWS[model].create_batch(2)
    changelist_query_count(admin_client, url)  # warm per-process caches
    few = changelist_query_count(admin_client, url)

    ADMIN_ROWS[model].create_batch(10)

    assert changelist_query_count(admin_client, url) == few


def test_user_tier_is_filterable_and_on_the_change_form(admin_client):
    pro = UserFactory(tier=User.Tier.PRO)
    free = UserFactory(tier=User.Tier.FREE)

    filtered = admin_client.get(admin_url(User, "changelist"), {"tier__exact": "pro"})
    change_page = admin_client.get(admin_url(User, "change", free.pk))

    assert list(filtered.context["cl"].result_list) == [pro]
    assert "tier" in change_page.context["adminform"].form.fields


def test_user_added_in_admin_gets_the_chosen_tier(admin_client):
    response = admin_client.post(
        admin_url(User, "add"),
        {
            "username": "newcomer",
            "usable_password": "true",
            "password1": "a-long-unusual-passphrase",
            "password2": "a-long-unusual-passphrase",
            "tier": "enterprise",
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    assert User.objects.get(username="newcomer").tier == User.Tier.ENTERPRISE


def test_organization_members_link_lists_only_that_orgs_members(admin_client):
    membership = MembershipFactory()
    MembershipFactory()  # someone else's org

    members_url = f"{admin_url(Membership, 'changelist')}?org__id__exact={membership.org_id}"

    organizations = admin_client.get(admin_url(Organization, "changelist"))
    members = admin_client.get(members_url)

    assert f'href="{members_url}"' in organizations.content.decode()

    assert list(members.context["cl"].result_list) == [membership]


def test_api_key_add_form_asks_only_for_user_and_name(admin_client):
    response = admin_client.get(admin_url(ApiKey, "add"))

    assert response.status_code == 200
    assert set(response.context["adminform"].form.fields) == {"user", "name"}


def test_api_key_created_in_admin_shows_the_raw_key_once_and_stores_only_its_hash(admin_client):
    # given
    owner = UserFactory()

    # when
    response = admin_client.post(
        admin_url(ApiKey, "add"), {"user": owner.pk, "name": "ci deploys", "_save": "Save"}, follow=True
    )

    # then the raw key is in exactly one message, shown once on the page
    assert response.status_code == 200
    shown = [str(message) for message in response.context["messages"] if RAW_KEY_PATTERN.search(str(message))]
    assert len(shown) == 1
    raw_key = RAW_KEY_PATTERN.search(shown[0]).group()
    assert shown[0] == f"Copy this key now, it will not be shown again: {raw_key}"
    assert response.content.decode().count(raw_key) == 1

    # and only its hash is stored, on a key that belongs to the chosen user
    api_key = ApiKey.objects.get()
    assert api_key.user == owner
    assert api_key.name == "ci deploys"
    assert api_key.key_hash == hash_api_key(raw_key)
    assert raw_key.startswith(f"oc_{api_key.prefix}_")
    secret = raw_key.removeprefix(f"oc_{api_key.prefix}_")
    stored = [str(getattr(api_key, field.attname)) for field in ApiKey._meta.concrete_fields]
    assert not any(secret in value for value in stored)
    log_entries = [f"{entry.object_repr} {entry.change_message}" for entry in LogEntry.objects.all()]
    assert log_entries
    assert not any(secret in entry for entry in log_entries)

    # and the key is not shown again
    assert raw_key not in admin_client.get(admin_url(ApiKey, "change", api_key.pk)).content.decode()


def test_api_key_change_page_never_shows_the_hash_and_locks_the_secret_fields(admin_client):
    api_key = ApiKeyFactory(name="before")
    other_user = UserFactory()

    page = admin_client.get(admin_url(ApiKey, "change", api_key.pk))
    admin_client.post(admin_url(ApiKey, "change", api_key.pk), {"user": other_user.pk, "name": "after"})

    content = page.content.decode()
    assert api_key.key_hash not in content
    assert api_key.prefix in content
    assert set(page.context["adminform"].form.fields) == {"name"}
    api_key.refresh_from_db()
    assert api_key.name == "after"
    assert api_key.user != other_user
    assert api_key.key_hash == hash_api_key(api_key.raw_key)


def test_revoke_action_revokes_only_the_selected_keys(admin_client):
    selected, already_revoked, untouched = ApiKeyFactory.create_batch(3)
    admin_client.post(
        admin_url(ApiKey, "changelist"), {"action": "revoke_selected", "_selected_action": [already_revoked.pk]}
    )
    already_revoked.refresh_from_db()
    first_revocation = already_revoked.revoked_at

    response = admin_client.post(
        admin_url(ApiKey, "changelist"),
        {"action": "revoke_selected", "_selected_action": [selected.pk, already_revoked.pk]},
        follow=True,
    )

    for api_key in (selected, already_revoked, untouched):
        api_key.refresh_from_db()
    assert selected.revoked_at is not None
    assert already_revoked.revoked_at == first_revocation
    assert untouched.revoked_at is None
    assert "Revoked 1 key(s)." in [str(message) for message in response.context["messages"]]
