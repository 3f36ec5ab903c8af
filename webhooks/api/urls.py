from django.urls import path

from ops_center.api import converters  # noqa: F401 - registers <id:...>
from webhooks.api import views

own = "webhooks"
org = "org-billing/organizations/<id:org_id>/webhooks"
one = "<id:endpoint_id>"

urlpatterns = [
    path(own, views.OwnEndpointsView.as_view(), name="webhooks"),
    path(f"{own}/{one}", views.OwnEndpointView.as_view(), name="webhook"),
    path(f"{own}/{one}/rotate-secret", views.OwnRotateSecretView.as_view(), name="webhook-rotate-secret"),
    path(f"{own}/{one}/deliveries", views.OwnDeliveriesView.as_view(), name="webhook-deliveries"),
    path(
        f"{own}/{one}/deliveries/<id:delivery_id>/redeliver",
        views.OwnRedeliverView.as_view(),
        name="webhook-redeliver",
    ),
    path(f"{own}/{one}/test", views.OwnTestView.as_view(), name="webhook-test"),
    path(org, views.OrgEndpointsView.as_view(), name="org-webhooks"),
    path(f"{org}/{one}", views.OrgEndpointView.as_view(), name="org-webhook"),
    path(f"{org}/{one}/rotate-secret", views.OrgRotateSecretView.as_view(), name="org-webhook-rotate-secret"),
    path(f"{org}/{one}/deliveries", views.OrgDeliveriesView.as_view(), name="org-webhook-deliveries"),
    path(
        f"{org}/{one}/deliveries/<id:delivery_id>/redeliver",
        views.OrgRedeliverView.as_view(),
        name="org-webhook-redeliver",
    ),
    path(f"{org}/{one}/test", views.OrgTestView.as_view(), name="org-webhook-test"),
]
