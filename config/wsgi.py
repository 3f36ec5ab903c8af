import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_wsgi_application()
# Imported once Django is set up: cache hits of the fast-read views skip Django's handler.
from ops_center.fast_wsgi import FastReadApplication  # noqa: E402

application = FastReadApplication(django_application)


def require_static_manifest() -> None:
    """Refuse to serve without the static files manifest the configured storage needs.

    With a manifest storage (production's) and DEBUG off, every ``{% static %}``
    looks its file up in the manifest ``collectstatic`` writes; without one each
    page that links a static file (the admin, /api/v1/docs/) is a 500. Better
    to fail here, once, at start, saying what to run. Management commands
    (collectstatic itself, migrate) never load this module.
    """
    from django.conf import settings
    from django.contrib.staticfiles.storage import ManifestFilesMixin
    from django.core.exceptions import ImproperlyConfigured
    from django.core.files.storage import storages

    storage = storages["staticfiles"]
    if settings.DEBUG or not isinstance(storage, ManifestFilesMixin) or not storage.manifest_strict:
        return
    if storage.read_manifest() is None:
        raise ImproperlyConfigured(
            f"The static files manifest ({storage.manifest_name} in STATIC_ROOT, {settings.STATIC_ROOT}) is "
            "missing, so every page that links a static file would be a 500. "
            "Run `python manage.py collectstatic --no-input` (with the same settings) before starting the server."
        )


require_static_manifest()
