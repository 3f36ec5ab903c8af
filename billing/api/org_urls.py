from django.urls import path

from billing.api import alert_views
from billing.api import org_views as views
from ops_center.api import converters  # noqa: F401 - registers <id:...>

org = "org-billing/organizations/<id:org_id>"

urlpatterns = [
    path(f"{org}/subscription", views.OrgSubscriptionView.as_view(), name="org-subscription"),
    path(f"{org}/credit-pool", views.OrgCreditPoolView.as_view(), name="org-credit-pool"),
    path(f"{org}/credit-pool/allocations", views.AllocationsView.as_view(), name="org-allocations"),
    path(f"{org}/credit-pool/alerts", alert_views.PoolAlertsView.as_view(), name="org-credit-pool-alerts"),
    path(f"{org}/allocation", views.OwnAllocationView.as_view(), name="org-own-allocation"),
    path(f"{org}/members/usage", views.MembersUsageView.as_view(), name="org-members-usage"),
    path("org-billing/subscriptions", views.SubscriptionsView.as_view(), name="subscriptions"),
]
