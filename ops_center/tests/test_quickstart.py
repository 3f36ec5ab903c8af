"""The embedded quick start (SQLite, in-memory cache) migrates and serves under gunicorn."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def quickstart_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "REDIS_", "TEST_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="ops_center.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        STATIC_ROOT=str(tmp_path / "static"),
        SECURE_SSL_REDIRECT="0",
    )
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback URL built here
        return response.status, response.read()


def test_default_settings_are_sqlite_and_memory_cache():
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env["DJANGO_SETTINGS_MODULE"] = "ops_center.settings"
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
    env.update(BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1", GUNICORN_ACCESS_LOG="")
    server = subprocess.Popen(
        [str(GUNICORN), "-c", "ops_center/gunicorn.conf.py", "ops_center.wsgi"],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        status, body = wait_for(f"http://127.0.0.1:{port}/healthz", server)
        assert (status, body) == (200, b'{"status": "ok"}')
        status, body = get(f"http://127.0.0.1:{port}/admin/login/")
        assert status == 200
        assert b"Django administration" in body or b"Ops-Center" in body
    finally:
        server.terminate()
        server.wait(timeout=20)


def wait_for(url: str, server: subprocess.Popen) -> tuple[int, bytes]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"gunicorn exited: {server.stderr.read().decode(errors='replace')}")
        try:
            return get(url)
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within 30 s")


def test_deploy_check_is_clean_with_real_secrets(tmp_path):
    env = quickstart_env(tmp_path)
    env.update(
        DEBUG="0", SECRET_KEY="x7#" * 20 + "a-long-random-production-secret", ALLOWED_HOSTS="billing.example.com"
    )
    env.pop("SECURE_SSL_REDIRECT")

    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
