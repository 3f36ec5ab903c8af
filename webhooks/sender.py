"""Sending one delivery: the signed POST, over pooled urllib3 connections.

* The target is resolved and checked again at each attempt (``targets.resolve``)
  and the connection goes to the checked address, with the URL's host in the
  Host header and as the TLS server name (certificate checked against it).
* One connection pool per (scheme, host, port, address), kept across deliveries.
* A total timeout of ``WEBHOOK_TIMEOUT_SECONDS`` (5), no redirects followed (a
  3xx is a failed attempt), no retries inside urllib3 (the schedule retries).
"""

import threading
import time
from collections import OrderedDict

import urllib3

from webhooks import conf, signing, targets
from webhooks.services import Outcome

USER_AGENT = "ops-center-webhooks/1"
MAX_POOLS = 256
READ_LIMIT = 4096  # of the receiver's answer; only the status counts


class Sender:
    """Thread-safe: the worker sends a batch from a few threads at once."""

    def __init__(self) -> None:
        self._pools: OrderedDict[tuple, urllib3.HTTPConnectionPool] = OrderedDict()
        self._lock = threading.Lock()

    def _pool(self, target: targets.Target) -> urllib3.HTTPConnectionPool:
        key = (target.scheme, target.host, target.port, target.address)
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            connect_to = target.address or target.host
            if target.scheme == "https":
                pool = urllib3.HTTPSConnectionPool(
                    connect_to,
                    target.port,
                    maxsize=4,
                    block=False,
                    retries=False,
                    cert_reqs="CERT_REQUIRED",
                    server_hostname=target.host,
                    assert_hostname=target.host,
                )
            else:
                pool = urllib3.HTTPConnectionPool(connect_to, target.port, maxsize=4, block=False, retries=False)
            self._pools[key] = pool
            while len(self._pools) > MAX_POOLS:
                _, old = self._pools.popitem(last=False)
                old.close()
            return pool

    def send(self, *, url: str, msg_id: str, body: bytes, secrets_in_use: list[str]) -> Outcome:
        started = time.monotonic()
        try:
            target = targets.resolve(url)
        except targets.TargetRefused as exc:
            return Outcome(status_code=None, duration_ms=0, error=f"refused: {exc}")
        timestamp = int(time.time())
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signing.signature_header(
                secrets_in_use, msg_id=msg_id, timestamp=timestamp, body=body
            ),
        }
        try:
            response = self._pool(target).urlopen(
                "POST",
                target.path,
                body=body,
                headers=headers,
                redirect=False,
                retries=False,
                timeout=urllib3.Timeout(total=conf.timeout_seconds()),
                preload_content=False,
                assert_same_host=False,
            )
            try:
                response.read(READ_LIMIT)
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            return Outcome(status_code=None, duration_ms=_elapsed_ms(started), error=_describe(exc))
        except OSError as exc:
            return Outcome(status_code=None, duration_ms=_elapsed_ms(started), error=f"{type(exc).__name__}: {exc}")
        return Outcome(status_code=response.status, duration_ms=_elapsed_ms(started))

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _describe(exc: Exception) -> str:
    if isinstance(exc, (urllib3.exceptions.TimeoutError,)):
        return f"timeout after {conf.timeout_seconds():g} s"
    reason = getattr(exc, "reason", None)
    return f"{type(exc).__name__}: {reason or exc}"[:255]
