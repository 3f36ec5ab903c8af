// The k6 suite: the staged ramp and thresholds of profile.json, the Locust suite's persona mix and keys file.
//
//   k6 run -e HOST=http://127.0.0.1:8000 -e KEYS_FILE=$PWD/var/demo-keys.csv loadtests/k6_load_test.js
//   k6 run -e LOAD_SHAPE=constant -e RATE=500 -e DURATION=300 ... loadtests/k6_load_test.js
//
// Environment: HOST (loopback only), KEYS_FILE (or LOCUST_KEYS_FILE; absolute, or relative to this
// file), LOAD_SHAPE staged|constant, SCALE and TIME_SCALE (staged), RATE, DURATION, VUS, MAX_VUS
// (constant), RESULTS_DIR (must exist; run_load_tests.sh makes it), THRESHOLD_<NAME> to override a
// threshold of profile.json.
// No K6_ prefix: k6 reads K6_* variables as its own options.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';

const PROFILE = JSON.parse(open('./profile.json'));
const HOST = (__ENV.HOST || 'http://127.0.0.1:8000').replace(/\/$/, '');
// Load is only ever sent to this machine.
if (!/^https?:\/\/(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?$/.test(HOST)) {
  throw new Error(`HOST must be a loopback URL such as http://127.0.0.1:8000, got ${HOST}`);
}
const API = `${HOST}/api/v1`;
const MODE = __ENV.LOAD_SHAPE || 'staged';
const SCALE = Number(__ENV.SCALE || 1);
const TIME_SCALE = Number(__ENV.TIME_SCALE || 0) || SCALE;
const RATE = Number(__ENV.RATE || 100);
const DURATION_S = Number(__ENV.DURATION || 300);
const RESULTS_DIR = __ENV.RESULTS_DIR || 'results';
const KEYS_FILE = __ENV.KEYS_FILE || __ENV.LOCUST_KEYS_FILE || '../var/demo-keys.csv';

const LIMITS = Object.fromEntries(
  Object.entries(PROFILE.thresholds).map(([name, value]) => [name, Number(__ENV[`THRESHOLD_${name.toUpperCase()}`] || value)]),
);

// The same stages as StagedRampShape (profile.json): users times SCALE, durations times TIME_SCALE.
const STAGES = PROFILE.stages.map((stage) => ({
  duration: `${Math.round(stage.duration_s * TIME_SCALE * 1000)}ms`,
  target: stage.target ? Math.max(1, Math.round(stage.target * SCALE)) : 0,
}));
const PEAK_VUS = Math.max(...STAGES.map((stage) => stage.target));
const PRE_VUS = Number(__ENV.VUS || Math.max(20, Math.ceil(RATE / 10)));

const scenarios = {
  staged: { executor: 'ramping-vus', startVUs: 0, stages: STAGES, gracefulRampDown: '5s', exec: 'stagedIteration' },
  // The open model: RATE iterations (one request each) per second, whatever the response times.
  constant: {
    executor: 'constant-arrival-rate',
    rate: RATE,
    timeUnit: '1s',
    duration: `${DURATION_S}s`,
    preAllocatedVUs: PRE_VUS,
    maxVUs: Number(__ENV.MAX_VUS || Math.max(PRE_VUS * 5, 100)),
    exec: 'constantIteration',
  },
};
if (!scenarios[MODE]) throw new Error(`LOAD_SHAPE must be staged or constant, got ${MODE}`);

export const options = {
  scenarios: { [MODE]: scenarios[MODE] },
  thresholds: {
    http_req_duration: [`p(95)<${LIMITS.p95_ms}`, `p(99)<${LIMITS.p99_ms}`],
    http_req_failed: [`rate<${LIMITS.max_failure_rate}`],
    balance_check_duration: [`p(95)<${LIMITS.balance_check_p95_ms}`, `p(99)<${LIMITS.balance_check_p99_ms}`],
    // Beyond latency: a wrong balance after a purchase fails the run, as in the Locust suite.
    workflow_mismatches: [`count<=${LIMITS.max_workflow_mismatches}`],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(95)', 'p(99)', 'count'],
};

const ENDPOINTS = [
  'balance_check', 'usage_summary', 'transactions', 'transactions_next_page', 'purchase',
  'workflow_balance_before', 'workflow_purchase', 'workflow_balance_after', 'workflow_transactions',
  'org_subscription', 'org_credit_pool', 'org_members_usage', 'org_allocate',
  'platform_analytics', 'revenue_trends', 'subscriptions',
];
const balanceCheck = new Trend('balance_check_duration', true);
const cacheHit = new Rate('cache_hit');
const perEndpoint = Object.fromEntries(
  ENDPOINTS.map((name) => [name, { duration: new Trend(`endpoint_${name}`, true), cache: new Rate(`cache_hit_${name}`) }]),
);
const workflowMismatches = new Counter('workflow_mismatches');
const workflowVerified = new Counter('workflow_verified');
const workflowUnverified = new Counter('workflow_unverified_shared_principal');
const refusals = new Counter('expected_refusals');

function readKeys(text) {
  const [header, ...rows] = text.trim().split(/\r?\n/);
  const columns = header.split(',');
  return rows.filter((row) => row).map((row) => Object.fromEntries(row.split(',').map((cell, i) => [columns[i], cell])));
}
const KEYS = readKeys(open(KEYS_FILE));
const PERSONAS = Object.entries(PROFILE.personas).map(([name, persona]) => ({
  name,
  ...persona,
  keys: KEYS.filter((key) => key.role === persona.role),
}));
const PERSONAS_BY_NAME = Object.fromEntries(PERSONAS.map((persona) => [persona.name, persona]));
const PERSONA_WEIGHTS = Object.fromEntries(PERSONAS.map((persona) => [persona.name, persona.weight]));
for (const persona of PERSONAS) {
  if (!persona.keys.length) throw new Error(`${KEYS_FILE} has no principal with role ${persona.role}`);
}

// Personas dealt to VUs 1, 2, 3... in a fixed cycle with the weights' proportions (7:2:1), so any
// prefix of VUs, as a ramp adds them, keeps the mix; smooth weighted round robin spreads them.
const CYCLE = (() => {
  const total = PERSONAS.reduce((sum, persona) => sum + persona.weight, 0);
  const credit = PERSONAS.map(() => 0);
  return Array.from({ length: total / gcd(PERSONAS.map((persona) => persona.weight)) }, () => {
    PERSONAS.forEach((persona, i) => { credit[i] += persona.weight; });
    const best = credit.indexOf(Math.max(...credit));
    credit[best] -= total;
    return best;
  });
})();
function gcd(numbers) {
  return numbers.reduce((a, b) => { while (b) [a, b] = [b, a % b]; return a; });
}
// How many of VUs 1..vu (inclusive) play the persona at `index`.
function vusOfPersona(index, vu) {
  const perCycle = CYCLE.filter((p) => p === index).length;
  const whole = Math.floor(vu / CYCLE.length) * perCycle;
  return whole + CYCLE.slice(0, vu % CYCLE.length).filter((p) => p === index).length;
}

// Staged: one principal per VU while there are enough, and the workflow check needs nobody else
// writing to it, so it runs only where no other VU up to the peak maps to the same principal.
function stagedIdentity(vu) {
  const personaIndex = CYCLE[(vu - 1) % CYCLE.length];
  const persona = PERSONAS[personaIndex];
  const rank = vusOfPersona(personaIndex, vu) - 1;
  const n = persona.keys.length;
  const peak = vusOfPersona(personaIndex, PEAK_VUS);
  return { persona, key: persona.keys[rank % n], exclusive: rank < n && rank + n >= peak };
}

function pick(weights) {
  const entries = Object.entries(weights);
  let roll = Math.random() * entries.reduce((sum, [, weight]) => sum + weight, 0);
  for (const [name, weight] of entries) {
    roll -= weight;
    if (roll < 0) return name;
  }
  return entries[entries.length - 1][0];
}

function call(who, method, path, name, body, expected) {
  const params = { headers: { Authorization: `Bearer ${who.key.api_key}` }, tags: { name } };
  if (expected) params.responseCallback = http.expectedStatuses({ min: 200, max: 399 }, ...expected);
  let response;
  if (method === 'POST') {
    params.headers['Content-Type'] = 'application/json';
    params.headers['Idempotency-Key'] = `${__VU}-${__ITER}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    response = http.post(`${API}${path}`, JSON.stringify(body), params);
  } else {
    response = http.get(`${API}${path}`, params);
  }
  const metrics = perEndpoint[name];
  metrics.duration.add(response.timings.duration);
  const xCache = response.headers['X-Cache'];
  if (xCache === 'HIT' || xCache === 'MISS') {
    cacheHit.add(xCache === 'HIT');
    metrics.cache.add(xCache === 'HIT');
  }
  if (name === 'balance_check') balanceCheck.add(response.timings.duration);
  if (expected && expected.includes(response.status)) refusals.add(1, { name });
  return response;
}

const json = (response, field) => (response.status < 300 ? response.json(field) : null);
// Balances are strings with 4 decimals; compare in ten-thousandths to stay exact.
const units = (credits) => Math.round(Number(credits) * 10000);
const state = {}; // per VU: each VU runs in its own JS runtime

const TASKS = {
  balance_check: (who) => call(who, 'GET', '/credits/balance', 'balance_check'),
  usage_summary: (who) => call(who, 'GET', '/credits/usage/summary?days=30', 'usage_summary'),
  browse_transactions: (who, oneRequest) => {
    // Constant mode sends one request per iteration: the next page or two come in the VU's next turns.
    if (oneRequest && state.cursor && state.pagesLeft > 0) {
      state.pagesLeft -= 1;
      state.cursor = json(call(who, 'GET', `/credits/transactions?cursor=${encodeURIComponent(state.cursor)}`, 'transactions_next_page'), 'next_cursor');
      return;
    }
    state.cursor = json(call(who, 'GET', '/credits/transactions?limit=20', 'transactions'), 'next_cursor');
    state.pagesLeft = 1 + Math.floor(Math.random() * 2);
    for (let page = 0, pages = oneRequest ? 0 : state.pagesLeft; page < pages && state.cursor; page++) {
      state.cursor = json(call(who, 'GET', `/credits/transactions?cursor=${encodeURIComponent(state.cursor)}`, 'transactions_next_page'), 'next_cursor');
    }
  },
  purchase: (who) => {
    const order = Math.random() < 0.5 ? { package: 'credits-1k' } : { credits: String(10 + Math.floor(Math.random() * 491)) };
    call(who, 'POST', '/credits/purchases', 'purchase', order);
  },
  purchase_workflow: (who, oneRequest) => {
    if (oneRequest) {
      // Constant mode: the workflow's next request only. Principals are shared there, so unverified.
      const step = state.workflowStep || 0;
      state.workflowStep = (step + 1) % 4;
      if (step === 1) call(who, 'POST', '/credits/purchases', 'workflow_purchase', { credits: '100' });
      else if (step === 3) call(who, 'GET', '/credits/transactions?limit=20', 'workflow_transactions');
      else call(who, 'GET', '/credits/balance', step ? 'workflow_balance_after' : 'workflow_balance_before');
      return;
    }
    const bought = 10 + Math.floor(Math.random() * 491);
    const before = json(call(who, 'GET', '/credits/balance', 'workflow_balance_before'), 'balance');
    if (before === null) return;
    const purchase = call(who, 'POST', '/credits/purchases', 'workflow_purchase', { credits: String(bought) });
    if (purchase.status !== 201) return;
    const after = json(call(who, 'GET', '/credits/balance', 'workflow_balance_after'), 'balance');
    const page = call(who, 'GET', '/credits/transactions?limit=20', 'workflow_transactions');
    if (after === null) return;
    workflowMismatches.add(0); // the threshold needs a sample even when all is well
    if (!who.exclusive) {
      workflowUnverified.add(1);
      return;
    }
    const rose = check(after, { 'workflow: balance rose by exactly the credits bought': () => units(after) - units(before) === bought * 10000 });
    (rose ? workflowVerified : workflowMismatches).add(1);
    const newest = (json(page, 'results') || [])[0];
    check(newest, { 'workflow: newest ledger row is the purchase': (row) => row && row.id === purchase.json('transaction.id') });
  },
  org_subscription: (who) => call(who, 'GET', `${orgPath(who)}/subscription`, 'org_subscription', null, [404]),
  org_credit_pool: (who) => {
    const available = json(call(who, 'GET', `${orgPath(who)}/credit-pool`, 'org_credit_pool', null, [404]), 'available');
    if (available !== null) state.poolAvailable = units(available);
  },
  org_members_usage: (who) => {
    state.members = json(call(who, 'GET', `${orgPath(who)}/members/usage?days=30&limit=20`, 'org_members_usage'), 'results') || [];
  },
  org_allocate: (who, oneRequest) => {
    if (!state.members || !state.members.length) {
      TASKS.org_members_usage(who);
      if (oneRequest || !state.members.length) return;
    }
    // Raise a member's allocation a little while the pool has room, else lower one back (as Locust does).
    const member = state.members[Math.floor(Math.random() * state.members.length)];
    const step = 5 * 10000;
    const [allocated, used] = [units(member.allocated), units(member.used)];
    const lower = state.poolAvailable !== undefined && state.poolAvailable < step && allocated - step >= used;
    const credits = (allocated + (lower ? -step : step)) / 10000;
    const body = { user_id: member.user_id, credits: credits.toFixed(4), note: 'load test' };
    const response = call(who, 'POST', `${orgPath(who)}/credit-pool/allocations`, 'org_allocate', body, [409]);
    if (response.status === 200) {
      member.allocated = response.json('allocation.allocated');
      if (state.poolAvailable !== undefined) state.poolAvailable -= units(member.allocated) - allocated;
    } else if (response.status === 409) {
      state.poolAvailable = 0;
    }
  },
  platform_analytics: (who) => call(who, 'GET', '/org-billing/analytics/platform', 'platform_analytics'),
  revenue_trends: (who) => call(who, 'GET', '/org-billing/analytics/revenue-trends?interval=month&periods=12', 'revenue_trends'),
  subscriptions: (who) => call(who, 'GET', '/org-billing/subscriptions?limit=20', 'subscriptions'),
};
const orgPath = (who) => `/org-billing/organizations/${who.key.org_id}`;

export function stagedIteration() {
  if (!state.who) state.who = stagedIdentity(__VU);
  TASKS[pick(state.who.persona.tasks)](state.who, false);
  sleep(PROFILE.think_time_s.min + Math.random() * (PROFILE.think_time_s.max - PROFILE.think_time_s.min));
}

// Requests one run of a task sends on average in the staged mode (a page or two after the first;
// the workflow's four). The constant mode sends one request per iteration and weighs tasks by
// this, so both modes send the same mix of requests.
const REQUESTS_PER_TASK = { browse_transactions: 2.5, purchase_workflow: 4 };

export function constantIteration() {
  const persona = PERSONAS_BY_NAME[pick(PERSONA_WEIGHTS)];
  const who = { persona, key: persona.keys[(__VU - 1) % persona.keys.length], exclusive: false };
  const weights = Object.fromEntries(
    Object.entries(persona.tasks).map(([task, weight]) => [task, weight * (REQUESTS_PER_TASK[task] || 1)]),
  );
  TASKS[pick(weights)](who, true);
}

export function handleSummary(data) {
  const summary = summarise(data);
  return {
    stdout: describe(summary),
    [`${RESULTS_DIR}/k6_summary.json`]: JSON.stringify(summary, null, 2),
    [`${RESULTS_DIR}/k6_summary_full.json`]: JSON.stringify(data, null, 2),
  };
}

function figures(metric) {
  if (!metric || !metric.values.count) return null;
  const v = metric.values;
  return { requests: v.count, avg_ms: v.avg, p50_ms: v.med, p95_ms: v['p(95)'], p99_ms: v['p(99)'], max_ms: v.max };
}

function summarise(data) {
  const m = data.metrics;
  const value = (name, field) => (m[name] ? m[name].values[field] : 0);
  const endpoints = {};
  const cache = [];
  for (const name of ENDPOINTS) {
    if (figures(m[`endpoint_${name}`])) endpoints[name] = figures(m[`endpoint_${name}`]);
    const rate = m[`cache_hit_${name}`];
    if (rate) cache.push({ name, hits: rate.values.passes, misses: rate.values.fails, hit_rate: rate.values.rate });
  }
  cache.push({ name: 'Aggregated', hits: value('cache_hit', 'passes'), misses: value('cache_hit', 'fails'), hit_rate: m.cache_hit ? m.cache_hit.values.rate : null });
  const thresholds = [];
  for (const [metric, body] of Object.entries(m)) {
    for (const [rule, result] of Object.entries(body.thresholds || {})) {
      const stat = rule.split(/[<>=]/)[0];
      const observed = stat === 'count' ? body.values.count : stat === 'rate' ? body.values.rate : body.values[stat];
      thresholds.push({ name: `${metric} ${rule}`, observed, passed: result.ok });
    }
  }
  return {
    tool: 'k6',
    host: HOST,
    load_shape: MODE,
    ...(MODE === 'staged' ? { scale: SCALE, time_scale: TIME_SCALE, peak_users: PEAK_VUS } : { target_rps: RATE, duration_s: DURATION_S }),
    duration_s: data.state.testRunDurationMs / 1000,
    requests: value('http_reqs', 'count'),
    rps: value('http_reqs', 'rate'),
    dropped_iterations: value('dropped_iterations', 'count'),
    failure_rate: value('http_req_failed', 'rate'),
    overall: figures(m.http_req_duration),
    balance_check: figures(m.balance_check_duration),
    balance_check_share: value('balance_check_duration', 'count') / (value('http_reqs', 'count') || 1),
    endpoints,
    cache_hit_rate: cache,
    events: {
      workflow_verified: value('workflow_verified', 'count'),
      workflow_mismatches: value('workflow_mismatches', 'count'),
      workflow_unverified_shared_principal: value('workflow_unverified_shared_principal', 'count'),
      expected_refusals: value('expected_refusals', 'count'),
    },
    thresholds,
    passed: thresholds.every((t) => t.passed),
  };
}

function describe(s) {
  const ms = (f, key) => (f ? `${f[key].toFixed(1)} ms` : '-');
  const pct = (rate) => (rate === null || rate === undefined ? '-' : `${(rate * 100).toFixed(1)}%`);
  const lines = [
    `k6 ${s.load_shape} run against ${s.host}: ${s.requests} requests in ${s.duration_s.toFixed(1)} s (${s.rps.toFixed(1)} req/s), ${s.dropped_iterations} dropped iterations`,
    `http_req_duration  p50 ${ms(s.overall, 'p50_ms')}  p95 ${ms(s.overall, 'p95_ms')}  p99 ${ms(s.overall, 'p99_ms')}`,
    `balance_check      p50 ${ms(s.balance_check, 'p50_ms')}  p95 ${ms(s.balance_check, 'p95_ms')}  p99 ${ms(s.balance_check, 'p99_ms')}  (${pct(s.balance_check_share)} of requests)`,
    `failure rate ${pct(s.failure_rate)}; cache hit rate ${pct(s.cache_hit_rate[s.cache_hit_rate.length - 1].hit_rate)}`,
    'cache hit rate per endpoint:',
    ...s.cache_hit_rate.map((row) => `  ${row.name.padEnd(26)} ${String(row.hits).padStart(8)} hits ${String(row.misses).padStart(8)} misses  ${pct(row.hit_rate)}`),
    `workflow: ${JSON.stringify(s.events)}`,
    'thresholds:',
    ...s.thresholds.map((t) => `  ${t.passed ? 'ok      ' : 'BREACHED'} ${t.name} (observed ${t.observed})`),
    `results in ${RESULTS_DIR}/k6_summary.json`,
  ];
  return `${lines.join('\n')}\n`;
}
