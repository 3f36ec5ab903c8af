"""The embedded quick start (SQLite, in-memory cache) migrates and serves under gunicorn."""

import os
import subprocess
import sys

from ops_center.tests.quickstart import PROJECT_DIR, free_port, get, manage, quickstart_env, start_gunicorn, wait_for


def test_default_settings_are_sqlite_and_memory_cache():
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    probe = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CACHES['default']['BACKEND'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "django.core.cache.backends.locmem.LocMemCache",
    ]


def test_sqlite_quick_start_migrates_and_serves(tmp_path):
    env = quickstart_env(tmp_path)
    migrated = manage(env, "migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    collected = manage(env, "collectstatic", "--no-input", "--verbosity", "0")
    assert collected.returncode == 0, collected.stderr

    port = free_port()
    env.update(WEB_CONCURRENCY="1")
    server = start_gunicorn(env, port)
    try:
        status, body = wait_for(f"http://127.0.0.1:{port}/healthz", server)
        assert (status, body) == (200, b'{"status": "ok"}')
        status, body = get(f"http://127.0.0.1:{port}/admin/login/")
        assert status == 200
        assert b"Django administration" in body or b"Ops-Center" in body
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_deploy_check_is_clean_with_real_secrets(tmp_path):
    env = quickstart_env(tmp_path)
    env.update(
        DEBUG="0", SECRET_KEY="x7#" * 20 + "a-long-random-production-secret", ALLOWED_HOSTS="billing.example.com"
    )
    env.pop("SECURE_SSL_REDIRECT")

    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
