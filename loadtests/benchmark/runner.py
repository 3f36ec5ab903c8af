"""Client workers: each a thread with its own keep-alive connection, timed with a monotonic clock.

A sample is the time from sending a request to having read its whole body,
measured with ``time.perf_counter_ns``. Only 2xx responses are samples; any
other status, and any connection error, is a failure filed under its status
or error name.
"""

import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import urllib3

from billing.demo.keys_csv import DemoKey
from loadtests.benchmark.server_cpu import Meter
from loadtests.benchmark.targets import Endpoint, Target

CLOCK = "time.perf_counter_ns (monotonic)"
# A GET sent on a keep-alive connection the server has just closed (gunicorn
# recycles workers) is retried once on a fresh one, as any HTTP client does;
# refused connections, redirects and error statuses are never retried.
RETRY = urllib3.Retry(total=1, connect=0, read=1, status=0, other=0, redirect=False, raise_on_status=False)


@dataclass(frozen=True)
class RunSettings:
    host: str
    iterations: int
    concurrency: int
    warmup: int
    mode: str  # "warm", or "cold": the cache is flushed before every measured request
    timeout: float


@dataclass
class EndpointRun:
    """Everything measured for one endpoint."""

    endpoint: Endpoint
    paths: list[str]
    principals: list[str]
    passed_over: list[str] = field(default_factory=list)  # principals whose path answered 404 before the run
    latencies_ns: list[int] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)  # "500", "error: NewConnectionError", ...
    cache: Counter = field(default_factory=Counter)  # X-Cache of successful responses: HIT, MISS or none
    wall_ns: int = 0
    cpu: dict = field(default_factory=dict)  # server_cpu and client_cpu over the measured phase (server_cpu.Meter)

    @property
    def requests(self) -> int:
        return len(self.latencies_ns) + sum(self.failures.values())


class _Budget:
    """The measured requests still to send, shared by the workers so they stop together."""

    def __init__(self, total: int) -> None:
        self._left = total
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True


class Runner:
    def __init__(
        self, settings: RunSettings, *, flush_cache: Callable[[], None] | None = None, meter: Meter | None = None
    ) -> None:
        self.settings = settings
        self._flush_cache = flush_cache
        self._meter = meter
        parsed = urllib3.util.parse_url(settings.host)
        self._origin = f"{parsed.scheme or 'http'}://{parsed.netloc}"
        self._prefix = (parsed.path or "").rstrip("/")

    def run(self, target: Target, on_request: Callable[[], None] = lambda: None) -> EndpointRun:
        """Send ``iterations`` measured requests from ``concurrency`` workers; ``on_request`` follows progress."""
        workers = self.settings.concurrency
        callers, passed_over = self._choose_callers(target)
        if target.endpoint.writes:
            # Each worker cycles through its share of the principals, so no one principal's write
            # throttle (THROTTLE_WRITES a minute) is what the run measures.
            slots = [callers[index::workers] or [callers[index % len(callers)]] for index in range(workers)]
        else:
            slots = [[callers[index % len(callers)]] for index in range(workers)]
        run = EndpointRun(
            endpoint=target.endpoint,
            paths=sorted({path for slot in slots for path, _ in slot}),
            principals=sorted({principal.username for slot in slots for _, principal in slot}),
            passed_over=passed_over,
        )
        budget = _Budget(self.settings.iterations)
        started: list[int] = []

        def start_clock() -> None:
            if self._meter is not None:
                self._meter.start()
            started.append(time.perf_counter_ns())

        # Warm-up is over for everyone before the clock starts, so total time covers only measured requests.
        barrier = threading.Barrier(workers, action=start_clock)
        parts = [EndpointRun(endpoint=target.endpoint, paths=[], principals=[]) for _ in range(workers)]
        errors: list[BaseException] = []
        threads = [
            threading.Thread(
                target=self._work,
                args=(slots[index], budget, barrier, parts[index], errors, on_request),
                daemon=True,
            )
            for index in range(workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        run.wall_ns = time.perf_counter_ns() - started[0]
        for part in parts:
            run.latencies_ns.extend(part.latencies_ns)
            run.failures.update(part.failures)
            run.cache.update(part.cache)
        if self._meter is not None:
            run.cpu = self._meter.stop(run.requests)
        return run

    def _choose_callers(self, target: Target) -> tuple[list[tuple[str, DemoKey]], list[str]]:
        """One caller per worker, passing over principals whose path is a 404 (an org without a live
        subscription, say) while others answer. Any other status is kept, to be measured as a failure;
        if every principal gets 404, they are all kept and the run reports the failures. A write is not
        probed (a probe would be a write too): all its principals take part."""
        if target.endpoint.writes:
            return list(target.calls), []
        callers: list[tuple[str, DemoKey]] = []
        passed_over: list[str] = []
        pool = urllib3.connection_from_url(self._origin, maxsize=1)
        try:
            for path, principal in target.calls:
                if len(callers) == self.settings.concurrency:
                    break
                failure, _ = self._send(pool, target.endpoint, self._prefix + path, _headers(principal))
                if failure == "404":
                    passed_over.append(principal.username)
                else:
                    callers.append((path, principal))
        finally:
            pool.close()
        return callers or list(target.calls), passed_over

    def _work(self, slot, budget, barrier, part: EndpointRun, errors: list, on_request: Callable[[], None]) -> None:
        endpoint = part.endpoint
        calls = itertools.cycle([(self._prefix + path, _headers(principal)) for path, principal in slot])
        # maxsize=1: one connection per worker, kept alive across its requests.
        pool = urllib3.connection_from_url(self._origin, maxsize=1, block=True)
        try:
            for _ in range(self.settings.warmup):
                self._send(pool, endpoint, *next(calls))
            barrier.wait()
            while budget.take():
                self._measure(pool, endpoint, *next(calls), part)
                on_request()
        except BaseException as exc:  # re-raised by run() in the calling thread
            errors.append(exc)
            barrier.abort()  # release the workers still waiting to start
        finally:
            pool.close()

    def _measure(self, pool, endpoint: Endpoint, url: str, headers: dict, part: EndpointRun) -> None:
        if self._flush_cache is not None:
            try:
                self._flush_cache()
            except Exception as exc:  # a failed flush spoils this sample, not the run
                part.failures[f"cache flush error: {type(exc).__name__}"] += 1
                return
        started = time.perf_counter_ns()
        failure, cache_status = self._send(pool, endpoint, url, headers)
        elapsed = time.perf_counter_ns() - started
        if failure is None:
            part.latencies_ns.append(elapsed)
            part.cache[cache_status] += 1
        else:
            part.failures[failure] += 1

    def _send(self, pool, endpoint: Endpoint, url: str, headers: dict) -> tuple[str | None, str]:
        """Returns (failure, X-Cache): failure is None for a 2xx, else the status or the error's name."""
        if endpoint.writes:
            headers = {**headers, "Content-Type": "application/json", "Idempotency-Key": f"bench-{uuid.uuid4().hex}"}
        try:
            response = pool.request(
                endpoint.method,
                url,
                body=endpoint.body,
                headers=headers,
                retries=RETRY,
                timeout=self.settings.timeout,
                preload_content=True,
            )
        except urllib3.exceptions.HTTPError as exc:
            reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
            return f"error: {type(reason).__name__}", "none"
        if 200 <= response.status < 300:
            return None, (response.headers.get("X-Cache") or "none").upper()
        return str(response.status), "none"


def _headers(principal) -> dict:
    return {"Authorization": f"Bearer {principal.api_key}", "Accept": "application/json"}
