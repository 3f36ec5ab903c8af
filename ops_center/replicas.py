"""Read replicas: which server answers a read that may run on a streaming replica.

A read that may be served from a replica says so at its call site::

    rows = replicas.read(lambda: list(queryset), user_id=user_id)

Everything inside ``read`` runs on the chosen alias (``PrimaryWritesRouter``
sends the block's reads there), so a report made of several queries needs no
``.using()`` on each. With no replica configured ``read`` just calls the
function: no query, no cache call, nothing else. Balances and every write
never go through ``read``; they stay on ``default``.

A replica is chosen only when all of these hold, else the primary answers:

* **It is up.** Its state (replay LSN, lag) is probed at most every
  ``STATE_TTL_SECONDS`` per process. A failure opens a breaker (the cache's
  ``CircuitBreaker``, with ``REPLICA_BREAKER_COOLDOWN``), so a replica that is
  down costs one connect attempt per cooldown per process, not one per read.
* **It is not lagging.** The lag is ``now() - pg_last_xact_replay_timestamp()``
  unless the replica has replayed everything it received while its WAL
  receiver runs: then it is 0, so an idle primary does not look like lag.
  More than ``REPLICA_MAX_LAG_SECONDS`` and the replica is skipped.
* **It has the principal's own writes (read-your-writes).** After a commit
  that wrote a user's (or an org's) ledger row, ``note_write_on_commit``
  stores the primary's WAL insert position for that user and org in the cache
  for ``token_ttl()`` seconds; a read for them uses a replica only once its
  replay LSN has reached it. The position is taken *after* the commit: taken
  inside the transaction it would lie before the commit record, and a replica
  could have replayed it without the commit. The insert position (not the
  write position) is used because with ``synchronous_commit=off`` the commit
  record may not be written out yet; either way a replica cannot replay
  beyond it. When the cache cannot be read, the primary answers.
* **No write transaction is open.** A read inside ``atomic()`` on the primary
  must see that transaction's own rows.

A routed read that fails on the replica (it went away mid-read, or a recovery
conflict cancelled it) is run again on the primary.
"""

import contextlib
import contextvars
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache as django_cache
from django.db import connections, transaction
from django.db.utils import InterfaceError, OperationalError

from ops_center import cache, metrics
from ops_center.cache_stats import CircuitBreaker

logger = logging.getLogger(__name__)

PRIMARY = "default"
# How long a process trusts a replica's measured state before probing it again.
STATE_TTL_SECONDS = 0.15
# The cache key of a principal's last write position (the deployment's KEY_PREFIX comes in front).
TOKEN_KEY = "replica-lsn:v1:{}"  # noqa: S105 - a key name, not a secret

T = TypeVar("T")

# The alias the current read() block reads from; None outside one.
_reading_from: contextvars.ContextVar[str | None] = contextvars.ContextVar("replica_read_alias", default=None)


def configured() -> list[str]:
    return getattr(settings, "DATABASE_REPLICAS", [])


def max_lag() -> float:
    return float(getattr(settings, "REPLICA_MAX_LAG_SECONDS", 5.0))


def token_ttl() -> int:
    """Seconds a principal's write position is kept.

    A replica within the lag limit has replayed every commit older than the
    limit, so after that the token is no longer needed; twice the limit plus a
    second leaves room for clock skew between the servers.
    """
    return int(2 * max_lag()) + 1


class PrimaryWritesRouter:
    """Reads inside ``replicas.read`` go to the alias it chose; writes and migrations always go to the primary.

    Without the write rule, saving an instance loaded from a replica would try
    the replica (Django's default router writes where an instance came from).
    """

    def db_for_read(self, model, **hints):
        return _reading_from.get()

    def db_for_write(self, model, **hints):
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        return True  # every alias holds the same data

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == PRIMARY


class ReplicaBreaker(CircuitBreaker):
    """The cache's breaker, with the replicas' own cooldown."""

    @property
    def cooldown(self) -> float:
        return float(getattr(settings, "REPLICA_BREAKER_COOLDOWN", 5.0))


@dataclass(frozen=True)
class ReplicaState:
    alias: str
    status: str  # "ok", "lagging", "down" (unreachable, breaker open) or "not_in_recovery" (promoted)
    lag_seconds: float | None = None
    replay_lsn: int | None = None
    checked_at: float = 0.0

    @property
    def usable(self) -> bool:
        return self.status == "ok"

    def public(self) -> dict:
        """For /readyz: states and timings, never hosts or error text."""
        lag = None if self.lag_seconds is None else round(self.lag_seconds, 3)
        return {"name": self.alias, "status": self.status, "lag_seconds": lag}


# Replay and receive positions as byte offsets (numeric), the lag in seconds, and whether
# a WAL receiver runs (the view has a row; its columns need pg_read_all_stats, its row does not).
PROBE_SQL = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn, "
    "pg_last_wal_receive_lsn() - '0/0'::pg_lsn, EXISTS (SELECT 1 FROM pg_stat_wal_receiver), "
    "EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())"
)


class Replica:
    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.breaker = ReplicaBreaker()
        self._state: ReplicaState | None = None
        self._probing = threading.Lock()

    def state(self, *, fresh: bool = False) -> ReplicaState:
        """The last measured state, probed again when older than STATE_TTL_SECONDS.

        One thread per process probes; the others keep the previous state
        meanwhile (or the primary, before the first probe), so a slow connect
        never queues every request.
        """
        state = self._state
        if not fresh and state is not None and time.monotonic() - state.checked_at < STATE_TTL_SECONDS:
            return state
        if not self._probing.acquire(blocking=fresh):
            return state or ReplicaState(self.alias, "down", checked_at=time.monotonic())
        try:
            state = self._state = self._probe()
        finally:
            self._probing.release()
        metrics.record_replica_state(self.alias, up=state.usable, lag_seconds=state.lag_seconds)
        return state

    def _probe(self) -> ReplicaState:
        if self.breaker.is_open:
            return ReplicaState(self.alias, "down", checked_at=time.monotonic())
        try:
            with connections[self.alias].cursor() as cursor:
                cursor.execute(PROBE_SQL)
                in_recovery, replay, receive, receiving, since_last_replay = cursor.fetchone()
        except Exception as exc:  # unreachable, refusing, or gone mid-query: all mean "not now"
            self.failed(exc)
            return ReplicaState(self.alias, "down", checked_at=time.monotonic())
        now = time.monotonic()
        if not in_recovery:
            return ReplicaState(self.alias, "not_in_recovery", checked_at=now)
        replay_lsn = int(replay) if replay is not None else None
        if receiving and replay is not None and receive is not None and receive <= replay:
            lag = 0.0  # replayed all it received, and still receiving: caught up, however idle the primary
        elif since_last_replay is not None:
            lag = max(0.0, float(since_last_replay))
        else:
            lag = None  # nothing replayed yet and WAL pending: unknown, so not used
        status = "ok" if replay_lsn is not None and lag is not None and lag <= max_lag() else "lagging"
        return ReplicaState(self.alias, status, lag_seconds=lag, replay_lsn=replay_lsn, checked_at=now)

    def failed(self, exc: BaseException) -> None:
        """Open the breaker and drop the connection, so the next attempt after the cooldown reconnects."""
        self.breaker.record_failure()
        self._state = ReplicaState(self.alias, "down", checked_at=time.monotonic())
        logger.warning("read replica %s unavailable (%s); reading from the primary", self.alias, type(exc).__name__)
        with contextlib.suppress(Exception):  # already broken; closing is best effort
            connections[self.alias].close()

    def reset(self) -> None:
        self.breaker.reset()
        self._state = None


_replicas: dict[str, Replica] = {}
_replicas_lock = threading.Lock()


def replica(alias: str) -> Replica:
    found = _replicas.get(alias)
    if found is None:
        with _replicas_lock:
            found = _replicas.setdefault(alias, Replica(alias))
    return found


def states(*, fresh: bool = False) -> list[ReplicaState]:
    """Every configured replica's state (for /readyz and /metrics)."""
    return [replica(alias).state(fresh=fresh) for alias in configured()]


def reset() -> None:
    """Forget measured states and close breakers (tests)."""
    for found in list(_replicas.values()):
        found.reset()


_primary_only: contextvars.ContextVar[bool] = contextvars.ContextVar("replica_reads_off", default=False)


@contextlib.contextmanager
def primary_only():
    """Routed reads inside go to the primary: a value computed right after a write (a cache refill) must include it."""
    token = _primary_only.set(True)
    try:
        yield
    finally:
        _primary_only.reset(token)


def read(query: Callable[[], T], *, user_id: int | None = None, org_id: int | None = None) -> T:
    """Run ``query`` on a replica that is up, not lagging and has the principal's own writes; else the primary."""
    aliases = configured()
    if not aliases or _primary_only.get():
        return query()
    alias, reason = choose(aliases, user_id=user_id, org_id=org_id)
    if alias == PRIMARY:
        metrics.record_routed_read(PRIMARY, reason)
        return _run_on(PRIMARY, query)
    try:
        result = _run_on(alias, query)
    except (OperationalError, InterfaceError) as exc:
        if not _is_recovery_conflict(exc):
            replica(alias).failed(exc)
        metrics.record_routed_read(PRIMARY, "replica_failed")
        return _run_on(PRIMARY, query)
    metrics.record_routed_read(alias, reason)
    return result


def _run_on(alias: str, query: Callable[[], T]) -> T:
    token = _reading_from.set(alias)
    try:
        return query()
    finally:
        _reading_from.reset(token)


def choose(aliases: list[str], *, user_id: int | None = None, org_id: int | None = None) -> tuple[str, str]:
    """(alias, reason): a caught-up replica, or the primary and why."""
    if connections[PRIMARY].in_atomic_block:
        return PRIMARY, "in_transaction"
    ready = [state for state in (replica(alias).state() for alias in aliases) if state.usable]
    if not ready:
        return PRIMARY, "no_replica_ready"
    needed = _required_lsn(user_id=user_id, org_id=org_id)
    if needed is None:
        return PRIMARY, "cache_unavailable"
    # A usable (ok) state always carries its replay LSN.
    caught_up = [state for state in ready if state.replay_lsn is not None and state.replay_lsn >= needed]
    if not caught_up:
        return PRIMARY, "read_your_writes"
    return random.choice(caught_up).alias, "replica"  # noqa: S311 - spreading load, not a secret


def _principal_keys(user_id: int | None, org_id: int | None) -> list[str]:
    keys = []
    if user_id is not None:
        keys.append(TOKEN_KEY.format(f"user_{user_id}"))
    if org_id is not None:
        keys.append(TOKEN_KEY.format(f"org_{org_id}"))
    return keys


def _required_lsn(*, user_id: int | None, org_id: int | None) -> int | None:
    """The WAL position a replica must have replayed for this principal: 0 with no recent write, None when unknown."""
    keys = _principal_keys(user_id, org_id)
    if not keys:
        return 0
    found = cache.breaker.call(lambda: django_cache.get_many(keys), fallback=None)
    if found is None:
        return None
    return max((int(value) for value in found.values()), default=0)


_pending = threading.local()


def note_write_on_commit(*, user_id: int, org_id: int | None = None) -> None:
    """After the surrounding transaction commits, make this user's (and org's) next routed reads see it.

    Costs nothing without replicas. With them, one statement on the primary
    and one cache write per committed transaction, however many rows it wrote:
    every row's callback runs after the same commit, and the first one
    publishes what all of them noted. A rolled-back transaction's principals
    are published with the thread's next commit instead, which only sends
    their reads to the primary a little longer.
    """
    if not configured():
        return
    pending = getattr(_pending, "keys", None)
    if pending is None:
        pending = _pending.keys = set()
    pending.update(_principal_keys(user_id, org_id))
    transaction.on_commit(_publish)


def _publish() -> None:
    keys = getattr(_pending, "keys", None)
    if not keys:
        return
    _pending.keys = None
    try:
        with connections[PRIMARY].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
            lsn = int(cursor.fetchone()[0])
    except Exception as exc:  # the write is committed; a failure here must not fail the request
        logger.warning("could not read the WAL position after a write (%s)", type(exc).__name__)
        return
    values = dict.fromkeys(keys, lsn)
    cache.breaker.call(lambda: django_cache.set_many(values, token_ttl()), fallback=None)


def _is_recovery_conflict(exc: BaseException) -> bool:
    """A query cancelled by replay (SQLSTATE 40001 on a standby): the replica is fine, this read was unlucky."""
    cause: Any = exc.__cause__
    return getattr(cause, "sqlstate", None) == "40001"
