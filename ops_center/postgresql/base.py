"""Django's PostgreSQL backend, with a connection health check that costs no round trip.

``CONN_HEALTH_CHECKS`` keeps persistent connections safe across a database
restart or failover: before a request reuses a connection, Django asks it
``SELECT 1``. That is one more round trip on every request that touches the
database, a fifth of a debit's. Between requests the server has nothing to
send, so a connection whose socket is readable then holds the server's
goodbye (a terminated backend's error, or the end of the stream after a
restart or a pooler's idle timeout): it is dropped for a fresh one, as the
``SELECT 1`` would have found. ``ops_center/tests/test_postgresql_backend.py``
terminates a served connection's backend to show it.
"""

import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.info.transaction_status == TransactionStatus.UNKNOWN:
            return False
        readable, _, _ = select.select([connection.fileno()], [], [], 0)
        return not readable
