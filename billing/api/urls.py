from django.urls import path

from billing.api import alert_views, views

urlpatterns = [
    path("credits/balance", views.BalanceView.as_view(), name="credits-balance"),
    path("credits/usage/summary", views.UsageSummaryView.as_view(), name="credits-usage-summary"),
    path("credits/transactions", views.TransactionsView.as_view(), name="credits-transactions"),
    path("credits/packages", views.PackagesView.as_view(), name="credits-packages"),
    path("credits/purchases", views.PurchaseView.as_view(), name="credits-purchases"),
    path("credits/usage", views.UsageView.as_view(), name="credits-usage"),
    path("credits/alerts", alert_views.AccountAlertsView.as_view(), name="credits-alerts"),
]
