"""The real URLconf plus views that fail, for the 500 tests (used with pytest.mark.urls)."""

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from config.urls import handler404, handler500
from config.urls import urlpatterns as real_urlpatterns

SECRET_FAILURE_TEXT = "boom-secret-internal-detail-7f3a"

__all__ = ["handler404", "handler500", "urlpatterns"]


class BoomView(APIView):
    """A DRF view that fails with an exception DRF does not know how to render."""

    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError(SECRET_FAILURE_TEXT)

    def post(self, request):
        raise RuntimeError(SECRET_FAILURE_TEXT)


def plain_boom(request):
    """A plain Django view that fails, outside DRF's exception handling."""
    raise RuntimeError(SECRET_FAILURE_TEXT)


urlpatterns = [
    path("api/v1/boom", BoomView.as_view(), name="boom"),
    path("api/v1/plain-boom", plain_boom, name="plain-boom"),
    path("plain-boom", plain_boom, name="plain-boom-html"),
    *real_urlpatterns,
]
