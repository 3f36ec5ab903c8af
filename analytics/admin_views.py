"""The staff dashboard in the admin: headline figures and three charts (Chart.js, vendored)."""

from django.contrib import admin
from django.template.response import TemplateResponse

from analytics.dashboard import dashboard_data


def dashboard(request):
    data = dashboard_data()
    context = {
        **admin.site.each_context(request),
        "title": "Staff dashboard",
        "as_of": data["as_of"],
        "window_days": data["window_days"],
        "figures": data["figures"],
        "charts": data["charts"],
    }
    return TemplateResponse(request, "admin/analytics/dashboard.html", context)


# Staff only: anyone else is sent to the admin login page (admin_view also adds never_cache and CSRF).
admin_dashboard = admin.site.admin_view(dashboard)
