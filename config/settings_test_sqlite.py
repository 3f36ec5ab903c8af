"""The API tests' second pass: the quick start's SQLite, with the real test Redis.

`make test` runs the credits, org billing, analytics and cache API tests again
under these settings, so the quick start answers exactly as PostgreSQL does.
Tests of PostgreSQL-only features carry ``@pytest.mark.postgresql_only`` and
are skipped here with their reason.
"""

from config.settings import SQLITE_OPTIONS, VAR_DIR
from config.settings_test import *  # noqa: F403
from config.settings_test import DATABASES

VAR_DIR.mkdir(exist_ok=True)
# A file, not the default in-memory database, so the race tests' threads share it.
_TEST_DATABASE = str(VAR_DIR / "ops_center_quickstart_test.sqlite3")
DATABASES = {
    "default": {
        **DATABASES["default"],
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _TEST_DATABASE,
        "USER": "",
        "PASSWORD": "",
        "HOST": "",
        "PORT": "",
        "OPTIONS": SQLITE_OPTIONS,
        "TEST": {"NAME": _TEST_DATABASE},
    }
}
