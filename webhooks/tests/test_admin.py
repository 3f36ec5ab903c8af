"""The webhooks admin: read-only pages, status filters, and the two actions staff have (disable, redeliver)."""

import pytest
from django.apps import apps
from django.contrib import admin

from ops_center.tests.admin_support import admin_url
from webhooks import services
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from webhooks.tests.factories import WebhookEndpointFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivery() -> WebhookDelivery:
    return services.endpoint_ping(endpoint=WebhookEndpointFactory())


def test_every_webhooks_model_is_registered_and_read_only(admin_client, delivery):
    models = set(apps.get_app_config("webhooks").get_models())
    rows = {WebhookEndpoint: delivery.endpoint, WebhookEvent: delivery.event, WebhookDelivery: delivery}
    assert models == set(rows)

    for model, row in rows.items():
        model_admin = admin.site._registry[model]
        changelist = admin_client.get(admin_url(model, "changelist"))
        request = changelist.wsgi_request
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request, row)
        assert not model_admin.has_delete_permission(request, row)
        assert changelist.status_code == 200
        assert admin_client.get(admin_url(model, "change", row.pk)).context["original"] == row


def test_the_endpoint_page_never_shows_its_secrets(admin_client, delivery):
    endpoint = delivery.endpoint
    endpoint, _secret = services.endpoint_rotate_secret(endpoint=endpoint)

    page = admin_client.get(admin_url(WebhookEndpoint, "change", endpoint.pk)).content.decode()

    assert endpoint.url in page
    assert endpoint.secret not in page
    assert endpoint.previous_secret not in page


def test_deliveries_filter_by_status(admin_client, delivery):
    failed = services.endpoint_ping(endpoint=delivery.endpoint)
    WebhookDelivery.objects.filter(pk=failed.pk).update(status=WebhookDelivery.Status.FAILED, next_attempt_at=None)

    response = admin_client.get(admin_url(WebhookDelivery, "changelist"), {"status__exact": "failed"})

    assert [row.pk for row in response.context["cl"].result_list] == [failed.pk]


def test_the_disable_action_disables_the_endpoint_and_fails_its_pending_deliveries(admin_client, delivery):
    endpoint = delivery.endpoint

    response = admin_client.post(
        admin_url(WebhookEndpoint, "changelist"), {"action": "disable", "_selected_action": [endpoint.pk]}, follow=True
    )

    assert response.status_code == 200
    endpoint.refresh_from_db()
    assert (endpoint.is_enabled, endpoint.disabled_reason) == (False, WebhookEndpoint.DisabledReason.MANUAL)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    disabled = admin_client.get(admin_url(WebhookEndpoint, "changelist"), {"is_enabled__exact": "0"})
    assert [row.pk for row in disabled.context["cl"].result_list] == [endpoint.pk]


def test_the_redeliver_action_queues_the_same_event_again_and_skips_disabled_endpoints(admin_client, delivery):
    disabled_delivery = services.endpoint_ping(endpoint=WebhookEndpointFactory())
    services.endpoint_disable(endpoint=disabled_delivery.endpoint)

    response = admin_client.post(
        admin_url(WebhookDelivery, "changelist"),
        {"action": "redeliver", "_selected_action": [delivery.pk, disabled_delivery.pk]},
        follow=True,
    )

    assert "Queued 1 redelivery(ies); 1 skipped (endpoint disabled)." in response.content.decode()
    again = WebhookDelivery.objects.exclude(pk__in=[delivery.pk, disabled_delivery.pk]).get()
    assert (again.event_id, again.endpoint_id, again.status) == (
        delivery.event_id,
        delivery.endpoint_id,
        WebhookDelivery.Status.PENDING,
    )
    assert not WebhookDelivery.objects.filter(event_id=disabled_delivery.event_id).exclude(pk=disabled_delivery.pk)
