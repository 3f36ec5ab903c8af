"""A collected STATIC_ROOT for live test servers.

gunicorn with the production settings refuses to start without the static
files manifest (config/wsgi.py). Tests collect once per session, without
compression (a second, not the minute WhiteNoise's compression takes), into a
temporary directory: the manifest is the same file either way.
"""

import atexit
import functools
import shutil
import tempfile

from django.core.management import call_command
from django.test.utils import override_settings

MANIFEST_STORAGE = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}


@functools.cache
def collected_static_root() -> str:
    root = tempfile.mkdtemp(prefix="ops-center-static-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    with override_settings(STATIC_ROOT=root, STORAGES=MANIFEST_STORAGE):
        call_command("collectstatic", "--no-input", verbosity=0)
    return root
