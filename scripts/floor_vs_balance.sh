#!/usr/bin/env bash
# The floor (one DRF view, one django-redis GET) against GET /api/v1/credits/balance on a cache hit:
# alternating wrk runs, both under config/gunicorn.py, with req/s and server CPU ms per request.
#   DATABASE_URL=... REDIS_URL=... scripts/floor_vs_balance.sh --keys var/demo-keys.csv --rounds 5 --duration 15
# --help lists the options (loadtests/benchmark/floor_compare.py).
set -euo pipefail
PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${VENV_BIN:-$PROJECT_DIR/.venv/bin}"
if ! command -v wrk >/dev/null; then
  echo "error: wrk is not installed: sudo apt-get install -y wrk (Debian/Ubuntu package wrk)" >&2
  exit 2
fi
cd "$PROJECT_DIR"
exec "$BIN/python" -m loadtests.benchmark.floor_compare "$@"
