"""The quick start as `make run` builds it: SQLite, the in-process cache and gunicorn, in a temporary folder."""

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
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        STATIC_ROOT=str(tmp_path / "static"),
        SECURE_SSL_REDIRECT="0",
        WEBHOOK_ALLOW_PRIVATE_TARGETS="1",  # as make run sets it
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


def start_gunicorn(env: dict[str, str], port: int) -> subprocess.Popen:
    """gunicorn with the project's config, as `make run` serves it, on a loopback port."""
    return subprocess.Popen(
        [str(GUNICORN), "-c", "config/gunicorn.py", "config.wsgi"],
        cwd=PROJECT_DIR,
        env={**env, "BIND": f"127.0.0.1:{port}", "GUNICORN_ACCESS_LOG": ""},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
