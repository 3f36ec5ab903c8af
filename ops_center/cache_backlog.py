"""Evictions that did not reach Redis, kept in PostgreSQL and replayed until every one has.

``ops_center.cache`` records a failed eviction here (``backlog.record``, or
``record_in_transaction`` for a durable one); each gunicorn worker replays the
rows in a thread (``start_replayer``, from gunicorn's ``post_worker_init``).
"""

import logging
import threading

from django.conf import settings
from django.core.cache import cache as django_cache
from django.db import transaction

from ops_center.cache_stats import _shared

logger = logging.getLogger(__name__)


class EvictionBacklog:
    """Evictions that did not reach Redis, kept in PostgreSQL until every one has.

    Process memory is not enough: while Redis is stalled every worker fails, and
    once it answers again the workers that did not make the write would serve the
    value it replaced for a whole TTL. So a failed eviction (a Redis error or
    timeout, or an open breaker) becomes a ``PendingEviction`` row, and every
    gunicorn worker replays the rows in a daemon thread (``start_replayer``,
    from gunicorn's ``post_worker_init``) every ``CACHE_EVICTION_REPLAY_INTERVAL``
    seconds. Revocations write their row in their own transaction, so a revoked
    key is evicted again within two rounds even if a reader re-cached its
    principal between the revocation's commit and its eviction.

    A round sends DEL twice, the second only after Redis answered the first: a
    command sent during a stall (a reader's SET of the old value, or an earlier
    DEL) waits in a socket buffer and runs when Redis resumes, in no fixed order
    across connections, while a command sent after an answer runs after them.
    A row is deleted only in the second round that replayed it successfully, so
    a timed-out DEL never retires it, and several workers replaying the same
    row is harmless (DEL is idempotent). Nothing here runs on a cache hit.
    """

    BATCH = 500

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._replaying = threading.Lock()
        # Keys whose row the database refused too; moved to the table when it answers again.
        self._unrecorded: set[str] = set()
        # Row ids that a previous round of this process replayed successfully.
        self._replayed_once: dict[int, None] = {}
        self._failing = False
        self._thread: EvictionReplayer | None = None

    def reset(self) -> None:
        """Forget this process's replay state (tests)."""
        with self._lock:
            self._unrecorded.clear()
        self._replayed_once = {}
        self._failing = False

    def record(self, keys: list[str]) -> None:
        """Keep keys whose eviction failed. Called after commit, on the write path, only when Redis failed."""
        try:
            with transaction.atomic():  # a savepoint inside a transaction: a failed INSERT must not break it
                self.record_in_transaction(keys)
        except Exception as exc:
            logger.warning("could not record %d failed cache evictions (%s); kept in memory", len(keys), exc)
            with self._lock:
                self._unrecorded.update(keys)

    def record_in_transaction(self, keys: list[str]) -> None:
        from ops_center.models import PendingEviction

        PendingEviction.objects.bulk_create([PendingEviction(key=key) for key in keys])

    def pending_keys(self) -> list[str]:
        from ops_center.models import PendingEviction

        with self._lock:
            unrecorded = list(self._unrecorded)
        return [*PendingEviction.objects.order_by("pk").values_list("key", flat=True), *unrecorded]

    def replay(self, *, use_database: bool = True) -> int:
        """One round. Returns the number of rows retired; raises when Redis does not answer.

        Database errors are logged and skipped (the keys in memory are still
        replayed); only Redis errors propagate, so the breaker stays open on them.
        """
        if not self._replaying.acquire(blocking=False):
            return 0  # another thread of this process is replaying right now
        try:
            rows = self._load_rows() if use_database else []
            with self._lock:
                unrecorded = list(self._unrecorded)
            keys = list(dict.fromkeys([key for _, key in rows] + unrecorded))
            if not keys:
                self._replayed_once = {}
                return 0
            try:
                django_cache.delete_many(keys)
                django_cache.delete_many(keys)  # sent after Redis answered the first: see the class docstring
            except Exception:
                self._replayed_once = {}
                if not self._failing:
                    logger.warning("cache evictions pending: Redis does not answer; replaying every round")
                self._failing = True
                raise
            if self._failing:
                logger.info("pending cache evictions replayed: %d keys", len(keys))
            self._failing = False
            retired = [pk for pk, _ in rows if pk in self._replayed_once]
            self._replayed_once = {pk: None for pk, _ in rows if pk not in self._replayed_once}
            if retired:
                self._delete_rows(retired)
            return len(retired)
        finally:
            self._replaying.release()

    def _load_rows(self) -> list[tuple[int, str]]:
        from ops_center.models import PendingEviction

        try:
            self._flush_unrecorded()
            return list(PendingEviction.objects.order_by("pk").values_list("pk", "key")[: self.BATCH])
        except Exception as exc:
            logger.warning("cannot read pending cache evictions (%s)", type(exc).__name__)
            return []

    def _flush_unrecorded(self) -> None:
        with self._lock:
            unrecorded = list(self._unrecorded)
        if unrecorded:
            self.record_in_transaction(unrecorded)
            with self._lock:
                for key in unrecorded:
                    self._unrecorded.discard(key)

    def _delete_rows(self, pks: list[int]) -> None:
        from ops_center.models import PendingEviction

        try:
            PendingEviction.objects.filter(pk__in=pks).delete()
        except Exception as exc:  # replayed again next round: harmless
            logger.warning("cannot delete replayed cache evictions (%s)", type(exc).__name__)

    def start_replayer(self) -> "EvictionReplayer | None":
        """Start this process's replay thread (gunicorn's post_worker_init). None when disabled or not needed."""
        interval = float(getattr(settings, "CACHE_EVICTION_REPLAY_INTERVAL", 0.5))
        if interval <= 0 or not _shared():
            return None  # the in-process cache cannot miss an eviction: there is nothing to replay
        if self._thread is None or not self._thread.is_alive():
            self._thread = EvictionReplayer(self, interval)
            self._thread.start()
        return self._thread

    def stop_replayer(self, timeout: float = 2.0) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop(timeout)


class EvictionReplayer(threading.Thread):
    """Replays the backlog every ``interval`` seconds; never raises, closes its own database connection."""

    def __init__(self, backlog: EvictionBacklog, interval: float) -> None:
        super().__init__(name="cache-eviction-replayer", daemon=True)
        self.backlog = backlog
        self.interval = interval
        self._stopping = threading.Event()

    def run(self) -> None:
        from django.db import close_old_connections, connections

        try:
            while not self._stopping.wait(self.interval):
                try:
                    self.backlog.replay()
                except Exception:  # noqa: S110 - Redis is down: logged once by replay(), tried again next round
                    pass
                finally:
                    close_old_connections()  # honours CONN_MAX_AGE, drops a connection that failed
        except BaseException:  # never take the worker down
            logger.exception("the cache eviction replayer stopped")
        finally:
            connections.close_all()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        if self is not threading.current_thread():
            self.join(timeout)


backlog = EvictionBacklog()
start_replayer = backlog.start_replayer
stop_replayer = backlog.stop_replayer
