"""A live gunicorn for tests: the project's own config file, the test database and the test Redis."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

from ops_center.tests.static_root import collected_static_root

PROJECT_DIR = Path(settings.BASE_DIR)
GUNICORN = Path(sys.executable).with_name("gunicorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def served_database_url() -> str:
    """TEST_DATABASE_URL, pointed at the test database pytest-django created."""
    parts = urlsplit(os.environ["TEST_DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def project_env(**extra: str) -> dict[str, str]:
    """The environment of a server or command that works on the test database and the test Redis."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "REDIS_", "PROMETHEUS"))}
    if "DATABASE_POOL_MODE" in os.environ:  # the pgBouncer pass: the server must run in its pool mode too
        env["DATABASE_POOL_MODE"] = os.environ["DATABASE_POOL_MODE"]
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=served_database_url(),
        REDIS_URL=os.environ["TEST_REDIS_URL"],
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",
        STATIC_ROOT=collected_static_root(),  # the production settings' gunicorn needs the manifest
    )
    env.update(extra)
    return env


class LiveGunicorn:
    """gunicorn with the project's own config file, on a free loopback port."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.env = project_env(BIND=f"127.0.0.1:{self.port}", GUNICORN_ACCESS_LOG="", **env)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LiveGunicorn":
        self.process = subprocess.Popen(
            [str(GUNICORN), "-c", "config/gunicorn.py", "config.wsgi"],
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn exited: {self.process.stderr.read().decode(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):  # noqa: S310 - loopback
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail("gunicorn did not answer /healthz within 30 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process.stderr.close()
            self.process = None
