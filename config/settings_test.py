"""Test settings: real PostgreSQL and real Redis, never SQLite or a dummy cache.

`make test` (scripts/test_services.py) provides both URLs, starting throwaway
servers when none are given.
"""

import os

from django.core.exceptions import ImproperlyConfigured

from config.settings import *  # noqa: F403
from config.settings import REPLICA_CONNECT_TIMEOUT, database_from_url, pool_safe, redis_cache, replica_database

_missing = [name for name in ("TEST_DATABASE_URL", "TEST_REDIS_URL") if not os.environ.get(name)]
if _missing:
    raise ImproperlyConfigured(
        f"{' and '.join(_missing)} not set. Run the suite with `make test`, which starts throwaway "
        "PostgreSQL and Redis servers, or point these variables at running ones."
    )

DATABASES = {"default": database_from_url(os.environ["TEST_DATABASE_URL"])}
DATABASES["default"]["TEST"] = {"NAME": "ops_center_test"}
# The suite opens connections from many threads; don't keep them around.
DATABASES["default"]["CONN_MAX_AGE"] = 0
# DATABASE_POOL_MODE=transaction runs the suite as it would behind a transaction-pooling pgBouncer.
pool_safe(DATABASES["default"], os.environ.get("DATABASE_POOL_MODE", "session"))

# A streaming replica of the test server (scripts/test_services.py starts one), as "replica_1".
# Its TEST MIRROR only gives it the primary's test database name: pytest-django creates
# ops_center_test on the primary and streaming replication creates it on the replica, which
# keeps its own server and connection. Routing stays off for the suite (most tests' data never
# commits, so no replica could see it); ops_center/tests/test_replicas.py turns it on with
# DATABASE_REPLICAS, in transactional tests.
DATABASE_REPLICAS = []
DATABASE_ROUTERS = []
if os.environ.get("TEST_DATABASE_REPLICA_URL"):
    DATABASES["replica_1"] = replica_database(
        os.environ["TEST_DATABASE_REPLICA_URL"], DATABASES["default"], connect_timeout=REPLICA_CONNECT_TIMEOUT
    )
    DATABASE_ROUTERS = ["ops_center.replicas.PrimaryWritesRouter"]
CACHES = {"default": redis_cache(os.environ["TEST_REDIS_URL"])}

SECURE_SSL_REDIRECT = False
# The tests' webhook receivers listen on loopback over http (SSRF tests turn this off).
WEBHOOK_ALLOW_PRIVATE_TARGETS = True
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests never serve static files; skip WhiteNoise and its "no STATIC_ROOT" warning.
MIDDLEWARE = [name for name in MIDDLEWARE if not name.startswith("whitenoise")]  # noqa: F405
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
