"""A database that refuses connections, for the tests of what the API answers without one."""

import socket
from contextlib import contextmanager

from django.db import connection


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def database_unreachable():
    """Point the default connection at a closed loopback port; restore it afterwards."""
    saved = dict(connection.settings_dict)
    try:
        connection.close()
        connection.settings_dict["HOST"] = "127.0.0.1"
        connection.settings_dict["PORT"] = str(free_port())
        yield saved
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
        connection.close()
