"""/favicon.ico: browsers ask every host for it (admin and docs pages included), and a 404 each time is log noise."""

import functools
from pathlib import Path

from django.http import HttpResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

# Read from the app's static folder, so it is served without collectstatic; pages may also link its static URL.
FAVICON = Path(__file__).resolve().parent / "static" / "ops_center" / "favicon.ico"


@functools.cache
def _icon() -> bytes:
    return FAVICON.read_bytes()


@require_safe
@cache_control(public=True, max_age=24 * 60 * 60)
def favicon(request):
    return HttpResponse(_icon(), content_type="image/x-icon")
