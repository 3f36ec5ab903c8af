"""A real redis-server of a test's own, which the test may stop, restart, pause and resume."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest


class DisposableRedis:
    """redis-server on a free loopback port.

    ``persistent=True`` keeps an RDB file in a private directory: a stop
    (SIGTERM) saves the data and a start loads it back, like a production Redis
    with snapshots, so entries cached before a restart are still there after it.
    """

    def __init__(self, *, persistent: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: sudo apt-get install redis-server")
        self.binary = binary
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.persistent = persistent
        self.directory = tempfile.mkdtemp(prefix="disposable-redis-") if persistent else None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--appendonly", "no"]
        if self.persistent:
            command += ["--dir", self.directory, "--dbfilename", "dump.rdb", "--save", "3600 1"]
        else:
            command += ["--save", ""]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0 and self._answers():
                    return
            time.sleep(0.05)
        pytest.fail("the disposable Redis did not start")

    def _answers(self) -> bool:
        """PONG, not LOADING: a persistent server reads its snapshot before it serves."""
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.resume()  # a paused server cannot handle SIGTERM
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: the port stays open and takes commands, which wait unanswered in socket buffers."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
