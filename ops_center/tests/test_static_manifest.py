"""The WSGI entry point refuses to start without the static files manifest its storage needs.

Without it (collectstatic never run) every page that links a static file, the
admin login and /api/v1/docs/, was a 500; now gunicorn fails at start, saying
what to run.
"""

import json
import subprocess

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.wsgi import require_static_manifest
from ops_center.tests.live_server import GUNICORN, PROJECT_DIR, free_port

MANIFEST_STORAGE = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


def test_a_missing_manifest_is_improperly_configured_naming_collectstatic(settings, tmp_path):
    settings.STORAGES = MANIFEST_STORAGE
    settings.STATIC_ROOT = tmp_path
    settings.DEBUG = False

    with pytest.raises(ImproperlyConfigured, match=r"manage\.py collectstatic"):
        require_static_manifest()


def test_a_collected_manifest_passes(settings, tmp_path):
    settings.STORAGES = MANIFEST_STORAGE
    settings.STATIC_ROOT = tmp_path
    settings.DEBUG = False
    (tmp_path / "staticfiles.json").write_text(json.dumps({"paths": {}, "version": "1.1", "hash": ""}))

    require_static_manifest()


def test_plain_storage_needs_no_manifest(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path  # the test settings' StaticFilesStorage
    settings.DEBUG = False

    require_static_manifest()


def test_debug_serves_unhashed_names_and_needs_no_manifest(settings, tmp_path):
    settings.STORAGES = MANIFEST_STORAGE
    settings.STATIC_ROOT = tmp_path
    settings.DEBUG = True

    require_static_manifest()


def test_gunicorn_without_collectstatic_fails_at_start_saying_what_to_run(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "STATIC_ROOT": str(tmp_path / "never-collected"),
        "SECURE_SSL_REDIRECT": "0",
        "BIND": f"127.0.0.1:{free_port()}",
        "WEB_CONCURRENCY": "1",
    }
    result = subprocess.run(
        [str(GUNICORN), "-c", "config/gunicorn.py", "config.wsgi"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "manage.py collectstatic" in result.stderr, result.stderr[-3000:]
