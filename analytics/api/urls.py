from django.urls import path

from analytics.api import views

urlpatterns = [
    path("org-billing/analytics/platform", views.PlatformAnalyticsView.as_view(), name="analytics-platform"),
    path("org-billing/analytics/revenue-trends", views.RevenueTrendsView.as_view(), name="analytics-revenue-trends"),
]
