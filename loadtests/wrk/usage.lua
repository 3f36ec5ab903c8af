-- wrk script: POST /api/v1/credits/usage, a fresh Idempotency-Key per request, rotating over the
-- API keys listed one per line in the file named by KEYS_FILE. RUN_ID makes the keys unique to
-- one run: a key seen before would be a replay, answered without a debit. Used by
-- loadtests/benchmark/debit_load.py.
local keys = {}
local sent = 0
local run_id = ""

function setup(thread)
  thread:set("thread_id", tostring(math.random(1, 1000000000)))
end

function init(args)
  run_id = os.getenv("RUN_ID") or ""
  for line in io.lines(os.getenv("KEYS_FILE")) do
    if #line > 0 then table.insert(keys, line) end
  end
  wrk.method = "POST"
  wrk.body = '{"service": "embedding", "units": 1, "credits": "0.0001"}'
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  sent = sent + 1
  wrk.headers["Authorization"] = "Bearer " .. keys[(sent % #keys) + 1]
  wrk.headers["Idempotency-Key"] = "wrk-" .. run_id .. "-" .. thread_id .. "-" .. sent
  return wrk.format()
end
