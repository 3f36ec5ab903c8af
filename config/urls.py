from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from analytics.admin_views import admin_dashboard
from ops_center import favicon, health, metrics
from ops_center.api.cache_views import CacheHealthView, CacheStatsView

handler404 = "ops_center.api.errors.handler404"
handler500 = "ops_center.api.errors.handler500"

api_v1: list[URLPattern | URLResolver] = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("cache/stats", CacheStatsView.as_view(), name="cache-stats"),
    path("cache/health", CacheHealthView.as_view(), name="cache-health"),
    path("", include("billing.api.urls")),
    path("", include("billing.api.org_urls")),
    path("", include("analytics.api.urls")),
    path("", include("webhooks.api.urls")),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("favicon.ico", favicon.favicon, name="favicon"),
    path("api/v1/", include(api_v1)),
    path("admin/dashboard/", admin_dashboard, name="admin-dashboard"),
    path("admin/", admin.site.urls),
]

if "debug_toolbar" in settings.INSTALLED_APPS:  # DEBUG=1 with requirements-dev.txt installed
    from debug_toolbar.toolbar import debug_toolbar_urls

    urlpatterns += debug_toolbar_urls()
