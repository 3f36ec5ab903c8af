"""The floor: the least a cached DRF GET can cost on this stack, to set ``/api/v1/credits/balance`` against.

One ``APIView`` that answers with one django-redis GET, served by the same
gunicorn config, the same middleware and the same DRF settings (renderer,
exception handler) as the API, through ``floor_settings``:

    DJANGO_SETTINGS_MODULE=config.settings_floor \\
        gunicorn -c config/gunicorn.py config.wsgi

What it leaves out, on purpose: authentication, permissions and throttling
(``[]``, ``AllowAny``, ``[]``). The floor is "Django + DRF + one Redis GET";
everything the balance endpoint spends beyond it (finding the caller by API
key, its own cache look-up, the X-Cache header, serializing a richer body) is
the margin issue 13 looks at. The value is a balance-shaped dict under a
fixed key, written once by the first request that finds it missing, so every
measured request is one GET that hits.
"""

from django.core.cache import cache
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from ops_center import health

FLOOR_KEY = "benchmark:floor:balance"
FLOOR_VALUE = {"user_id": 1, "credits": "1000.00", "allocations": [], "total_available": "1000.00"}


class FloorView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    def get(self, request):
        value = cache.get(FLOOR_KEY)
        if value is None:  # only the first request after a flush
            value = FLOOR_VALUE
            cache.set(FLOOR_KEY, value, timeout=None)
        return Response(value)


urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("floor", FloorView.as_view(), name="floor"),
]
