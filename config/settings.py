"""Settings, read from the environment (twelve-factor, via django-environ).

With nothing set, the project runs on the embedded quick start: a SQLite file
and the in-process memory cache. Set DATABASE_URL and REDIS_URL for PostgreSQL
and Redis.
"""

import re
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
# The fallback key only ever serves local development; check --deploy flags it.
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-local-development-only-key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "ops_center",
    "orgs",
    "webhooks",
    "billing",
    "analytics",
    # `manage.py benchmark` and the load-test tooling; no models.
    "loadtests",
]

MIDDLEWARE = [
    # First, so the request latency histogram covers the whole stack.
    "ops_center.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin and Swagger UI assets from gunicorn, with no CDN.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's session, auth and messages middleware, stepping aside for API-key calls.
    "ops_center.middleware.BrowserSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Django's own: `check --deploy` looks for it by name.
    "django.middleware.csrf.CsrfViewMiddleware",
    "ops_center.middleware.BrowserAuthenticationMiddleware",
    "ops_center.middleware.BrowserMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "ops_center.api.errors.DatabaseUnavailableMiddleware",
]

# django-debug-toolbar, in development only: with DEBUG=0 it is never imported,
# and it is installed only by requirements-dev.txt.
if DEBUG:
    from importlib.util import find_spec

    if find_spec("debug_toolbar") is not None:
        INSTALLED_APPS.append("debug_toolbar")
        MIDDLEWARE.insert(
            MIDDLEWARE.index("ops_center.metrics.MetricsMiddleware") + 1,
            "debug_toolbar.middleware.DebugToolbarMiddleware",
        )
        INTERNAL_IPS = ["127.0.0.1", "::1"]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Django's PostgreSQL backend with a health check that sends nothing (ops_center/postgresql/base.py).
POSTGRESQL_ENGINE = "ops_center.postgresql"


def database_from_url(url: str) -> dict:
    """A DATABASES entry from a database URL, with the project's PostgreSQL backend for PostgreSQL."""
    database = environ.Env.db_url_config(url)
    if database["ENGINE"] == "django.db.backends.postgresql":
        database["ENGINE"] = POSTGRESQL_ENGINE
    return database


DATABASES = {
    "default": database_from_url(env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")),
}
# The quick start's SQLite under gunicorn's threads: writers queue for the lock (taken
# at BEGIN, so a waiting writer never fails half-way) instead of failing at once with
# "database is locked", and WAL lets readers run beside the one writer.
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"].setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
# Persistent connections: a new PostgreSQL connection costs more than most of
# our hot queries, so each worker keeps its own and checks it before reuse
# (on PostgreSQL without a round trip: POSTGRESQL_ENGINE).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == POSTGRESQL_ENGINE:
    DATABASES["default"].setdefault("OPTIONS", {})
    # Fail fast when the server is gone, so the API answers 503 quickly.
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=3))


def pool_safe(database: dict, pool_mode: str, *, pooler_prepares: bool = False) -> dict:
    """Behind pgBouncer in transaction pooling, turn off what needs one server session across transactions:
    server-side cursors (iterator() on PostgreSQL) and, unless the pooler tracks them itself
    (``pooler_prepares``: pgBouncer 1.21 or later with max_prepared_statements set), psycopg's prepared
    statements."""
    if pool_mode not in ("session", "transaction"):
        raise ImproperlyConfigured("DATABASE_POOL_MODE is 'session' (default) or 'transaction' (pgBouncer).")
    if pool_mode == "transaction" and database["ENGINE"] == POSTGRESQL_ENGINE:
        database["DISABLE_SERVER_SIDE_CURSORS"] = True
        if not pooler_prepares:
            database.setdefault("OPTIONS", {})["prepare_threshold"] = None
    return database


def replica_database(url: str, primary: dict, *, connect_timeout: int) -> dict:
    """A read replica's alias: the primary's options, its own URL and a short connect timeout.

    TEST MIRROR only renames the database to the primary's test database: the
    replica keeps its own server and connection, and streaming replication
    brings the test database to it (ops_center/tests/test_replicas.py).
    """
    replica = database_from_url(url)
    if replica["ENGINE"] != POSTGRESQL_ENGINE or primary["ENGINE"] != replica["ENGINE"]:
        raise ImproperlyConfigured("Read replicas need PostgreSQL, for the primary and every replica.")
    replica.update(CONN_MAX_AGE=primary["CONN_MAX_AGE"], CONN_HEALTH_CHECKS=True, TEST={"MIRROR": "default"})
    # psycopg, like libpq, waits at least 2 s; the replica breaker pays that once per cooldown per process.
    options = {**primary.get("OPTIONS", {}), **replica.get("OPTIONS", {}), "connect_timeout": connect_timeout}
    replica["OPTIONS"] = options
    return replica


# pgBouncer: DATABASE_POOL_MODE=transaction when connections go through a transaction-pooling pgBouncer.
DATABASE_POOL_MODE = env.str("DATABASE_POOL_MODE", default="session")
# 1 when that pgBouncer is 1.21 or later with max_prepared_statements > 0: it keeps psycopg's
# prepared statements per server connection, so they need not be turned off.
DATABASE_POOL_PREPARED_STATEMENTS = env.bool("DATABASE_POOL_PREPARED_STATEMENTS", default=False)
pool_safe(DATABASES["default"], DATABASE_POOL_MODE, pooler_prepares=DATABASE_POOL_PREPARED_STATEMENTS)
# Read replicas (ops_center/replicas.py): each URL becomes the alias replica_1, replica_2, ...
# Reads are sent there explicitly (replicas.read); balances and every write stay on "default".
REPLICA_CONNECT_TIMEOUT = env.int("REPLICA_CONNECT_TIMEOUT", default=2)
REPLICA_MAX_LAG_SECONDS = env.float("REPLICA_MAX_LAG_SECONDS", default=5.0)
REPLICA_BREAKER_COOLDOWN = env.float("REPLICA_BREAKER_COOLDOWN", default=5.0)
DATABASE_REPLICAS = []
for _number, _url in enumerate(env.list("DATABASE_REPLICA_URLS", default=[]), start=1):
    DATABASE_REPLICAS.append(f"replica_{_number}")
    DATABASES[f"replica_{_number}"] = pool_safe(
        replica_database(_url, DATABASES["default"], connect_timeout=REPLICA_CONNECT_TIMEOUT),
        DATABASE_POOL_MODE,
        pooler_prepares=DATABASE_POOL_PREPARED_STATEMENTS,
    )
if DATABASE_REPLICAS:
    # Writes and migrations go to the primary whatever instance or hint they come with.
    DATABASE_ROUTERS = ["ops_center.replicas.PrimaryWritesRouter"]

# The quick start's SQLite ignores INCLUDE lists; the covering indexes are for PostgreSQL.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "orgs.User"


def _cache_key_prefix(database_name) -> str:
    """The deployment's prefix on every Redis key: CACHE_KEY_PREFIX, else the database name's basename."""
    explicit = env.str("CACHE_KEY_PREFIX", default="")
    if explicit:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", explicit):
            raise ImproperlyConfigured("CACHE_KEY_PREFIX may hold only letters, digits, '_', '.' and '-'.")
        return explicit
    derived = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(database_name)).name).strip("_")
    return derived or "ops_center"


# Deployments that share one Redis database never see each other's entries: every
# key (values, locks, stats, throttle counters) starts with this prefix.
CACHE_KEY_PREFIX = _cache_key_prefix(DATABASES["default"]["NAME"])


def redis_cache(url: str, *, key_prefix: str | None = None) -> dict:
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": key_prefix if key_prefix is not None else CACHE_KEY_PREFIX,
        "OPTIONS": {
            "PARSER_CLASS": "redis.connection._HiredisParser",
            # Short timeouts: a sick Redis must cost milliseconds, not seconds.
            "SOCKET_CONNECT_TIMEOUT": env.float("REDIS_CONNECT_TIMEOUT", default=0.25),
            "SOCKET_TIMEOUT": env.float("REDIS_SOCKET_TIMEOUT", default=0.25),
        },
    }


REDIS_URL = env.str("REDIS_URL", default="")
# Seconds the cache leaves Redis alone after a failure (ops_center/cache.py).
CACHE_BREAKER_COOLDOWN = env.float("CACHE_BREAKER_COOLDOWN", default=5.0)
# Seconds between two replays of the evictions that could not reach Redis, in a
# thread of each gunicorn worker (0 turns it off). 0.5 keeps "no stale read 1 s
# after Redis answers again": a round that started just before Redis resumed
# times out (REDIS_SOCKET_TIMEOUT), the next one replays.
CACHE_EVICTION_REPLAY_INTERVAL = env.float("CACHE_EVICTION_REPLAY_INTERVAL", default=0.5)
if REDIS_URL:
    CACHES = {"default": redis_cache(REDIS_URL)}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ops-center"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Messages live in the session, not a cookie: the admin shows a new API key's
# secret once through a message, and it must not travel in a readable cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "orgs.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["ops_center.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": (
        ["ops_center.api.renderers.OrjsonRenderer", "rest_framework.renderers.BrowsableAPIRenderer"]
        if DEBUG
        else ["ops_center.api.renderers.OrjsonRenderer"]
    ),
    "DEFAULT_THROTTLE_CLASSES": ["ops_center.api.throttling.WriteRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"writes": env.str("THROTTLE_WRITES", default="600/min")},
    "EXCEPTION_HANDLER": "ops_center.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

# Bodies over this size get a 413 before they are parsed.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=16 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES * 4

PAYMENT_GATEWAY = env.str("PAYMENT_GATEWAY", default="billing.payments.InstantSettlementGateway")
# Custom purchases: whole credits at this price each, in minor units.
CUSTOM_CREDITS_PRICE_MINOR_PER_CREDIT = env.str("CUSTOM_CREDITS_PRICE_MINOR_PER_CREDIT", default="1")
CUSTOM_CREDITS_CURRENCY = env.str("CUSTOM_CREDITS_CURRENCY", default="USD")

# Idempotency keys are kept at least this long (purge_idempotency_keys).
IDEMPOTENCY_KEY_RETENTION_HOURS = env.int("IDEMPOTENCY_KEY_RETENTION_HOURS", default=48)

SPECTACULAR_SETTINGS = {
    "TITLE": "Ops-Center billing API",
    "DESCRIPTION": "Usage credits, organization billing and platform analytics.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "SubscriptionStatusEnum": "billing.models.Subscription.Status",
        "InvoiceStatusEnum": "billing.models.Invoice.Status",
    },
}

# Production hardening; each can be relaxed from the environment for local HTTP.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# Prometheus scrapes each instance directly, inside the network; the token guards it.
SECURE_REDIRECT_EXEMPT += [r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True

# /metrics (ops_center/metrics.py): with a token, scrapers send "Authorization: Bearer <token>";
# without one it is served only when DEBUG=1 and is a 404 in production.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Webhooks (webhooks/, docs/webhooks.md). Private targets: http:// and loopback, private,
# link-local and metadata addresses, refused at registration and delivery unless on; on by
# default only with DEBUG=1 (make run sets it; tests set it in settings_test.py).
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=DEBUG)
# Seconds between attempts, comma-separated; empty for the default (about 3 days, webhooks/conf.py).
WEBHOOK_RETRY_SCHEDULE = env.str("WEBHOOK_RETRY_SCHEDULE", default="") or None
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=5.0)
WEBHOOK_DISABLE_AFTER_SECONDS = env.float("WEBHOOK_DISABLE_AFTER_SECONDS", default=5 * 24 * 3600)
WEBHOOK_SECRET_OVERLAP_SECONDS = env.float("WEBHOOK_SECRET_OVERLAP_SECONDS", default=24 * 3600)
WEBHOOK_MAX_ENDPOINTS = env.int("WEBHOOK_MAX_ENDPOINTS", default=20)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
