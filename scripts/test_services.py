"""Run a command against real PostgreSQL and Redis, starting throwaway ones if needed.

    python scripts/test_services.py -- pytest -q

When TEST_DATABASE_URL and TEST_REDIS_URL are both set, the command runs
against them unchanged. Otherwise a private PostgreSQL cluster and/or Redis
server is started from the local binaries on free loopback ports, in a
temporary directory that is removed afterwards, so the suite needs no running
services and never touches a developer's own data.
"""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

START_TIMEOUT_SECONDS = 30


class MissingBinary(SystemExit):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_binary(name: str, extra_globs: tuple[str, ...], debian_package: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for pattern in extra_globs:
        candidates = sorted(glob.glob(pattern), reverse=True)
        if candidates:
            return candidates[0]
    raise MissingBinary(
        f"error: '{name}' was not found. Install it with `sudo apt-get install {debian_package}`, "
        "or point the suite at running servers with TEST_DATABASE_URL and TEST_REDIS_URL."
    )


def wait_for_port(port: int, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise SystemExit(f"error: throwaway {what} did not start on port {port}.\n{tail}")


def unprivileged_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root, so root runs it as 'postgres' (or 'nobody')."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise SystemExit("error: running as root and no 'postgres' or 'nobody' user exists to run PostgreSQL.")


def as_unprivileged(command: list[str]) -> list[str]:
    user = unprivileged_user()
    return ["runuser", "-u", user.pw_name, "--", *command] if user else command


@contextmanager
def throwaway_postgres(workdir: Path):
    initdb = find_binary("initdb", ("/usr/lib/postgresql/*/bin/initdb",), "postgresql")
    pg_ctl = str(Path(initdb).with_name("pg_ctl"))
    data, log, socket_dir = workdir / "pgdata", workdir / "postgres.log", workdir / "pgsocket"
    socket_dir.mkdir()
    owner = unprivileged_user()
    if owner:
        for path in (workdir, socket_dir):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = free_port()
    print(f"starting throwaway PostgreSQL on 127.0.0.1:{port}", file=sys.stderr)
    subprocess.run(
        as_unprivileged([initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # Durability is pointless for a throwaway cluster; turning it off makes the suite faster.
    options = (
        f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        as_unprivileged([pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, "PostgreSQL", log)
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            as_unprivileged([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


@contextmanager
def throwaway_redis(workdir: Path):
    redis_server = find_binary("redis-server", (), "redis-server")
    port, log = free_port(), workdir / "redis.log"
    print(f"starting throwaway Redis on 127.0.0.1:{port}", file=sys.stderr)
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, "Redis", log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        raise SystemExit("usage: test_services.py -- COMMAND [ARGS...]")
    env = dict(os.environ)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ops-center-test-")))
        if not env.get("TEST_DATABASE_URL"):
            env["TEST_DATABASE_URL"] = stack.enter_context(throwaway_postgres(workdir))
        if not env.get("TEST_REDIS_URL"):
            env["TEST_REDIS_URL"] = stack.enter_context(throwaway_redis(workdir))
        process = subprocess.Popen(argv, env=env)
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            return process.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
