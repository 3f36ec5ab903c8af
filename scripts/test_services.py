"""Run a command against real PostgreSQL and Redis, starting throwaway ones if needed.

    python scripts/test_services.py -- pytest -q
    python scripts/test_services.py --no-replica -- pytest -q

When TEST_DATABASE_URL and TEST_REDIS_URL are both set, the command runs
against them unchanged. Otherwise a private PostgreSQL cluster and/or Redis
server is started from the local binaries on free loopback ports, in a
temporary directory that is removed afterwards, so the suite needs no running
services and never touches a developer's own data.

With a throwaway PostgreSQL, a streaming replica of it is started too
(``pg_basebackup -R`` with a replication slot, hot standby, on its own loopback
port) whenever pg_basebackup is installed, and exported as
TEST_DATABASE_REPLICA_URL, with TEST_DATABASE_REPLICA_PG_CTL (a JSON list: the
pg_ctl command for its data directory) so tests can stop and start it. The
routing tests (ops_center/tests/test_replicas.py) run against it and skip,
naming the package to install, without it. ``--no-replica`` or
TEST_REPLICA=0 leaves it out.

``--pgbouncer`` (or TEST_PGBOUNCER=1) puts a throwaway pgBouncer in
transaction pooling in front of the throwaway primary: TEST_DATABASE_URL then
points at it and DATABASE_POOL_MODE=transaction is set, so the suite runs as
production does behind pgBouncer; TEST_PGBOUNCER_URL names it too (its admin
console is the database ``pgbouncer`` there, for user postgres). Pass pytest
``--reuse-db`` with it: pgBouncer keeps server connections to the test
database, so dropping it at the end would fail (the whole cluster is thrown
away anyway). Without the pgbouncer binary the command runs straight against
the primary with TEST_PGBOUNCER_MISSING set to a message naming the package,
and the pass's plugin (``pytest -p ops_center.tests.pgbouncer_pass``) skips
every test with it. `make test` runs that pass.
"""

import glob
import json
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
# A hot standby needs at least the primary's value, so both clusters use this one.
MAX_CONNECTIONS = 200
REPLICA_SLOT = "ops_center_test_replica"


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


def postgres_binary(name: str) -> str:
    return find_binary(name, (f"/usr/lib/postgresql/*/bin/{name}",), "postgresql")


@contextmanager
def throwaway_postgres(workdir: Path):
    initdb = postgres_binary("initdb")
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
    # wal_level=replica and WAL senders let a streaming replica follow it (throwaway_replica).
    options = (
        f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
        f"-c synchronous_commit=off -c full_page_writes=off -c max_connections={MAX_CONNECTIONS} "
        "-c wal_level=replica -c max_wal_senders=4 -c max_replication_slots=4"
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


def replica_wanted(flags: list[str]) -> bool:
    if "--no-replica" in flags or os.environ.get("TEST_REPLICA", "1") == "0":
        return False
    if "--replica" in flags:
        return True
    try:
        return (Path(postgres_binary("initdb")).resolve().parent / "pg_basebackup").exists()
    except MissingBinary:
        return False


@contextmanager
def throwaway_replica(workdir: Path, primary_url: str):
    """A hot standby of the throwaway primary: pg_basebackup -R, then its own postmaster on a free port.

    Yields (url, pg_ctl command for its data directory). A replication slot keeps
    the primary's WAL while the replica is stopped by a test, so it catches up
    when started again.
    """
    # From the primary's own bin directory (the one with initdb): /usr/bin holds only wrappers.
    bindir = Path(postgres_binary("initdb")).resolve().parent
    pg_basebackup, pg_ctl = str(bindir / "pg_basebackup"), str(bindir / "pg_ctl")
    if not Path(pg_basebackup).exists():
        raise MissingBinary(
            f"error: '{pg_basebackup}' was not found. Install it with `sudo apt-get install postgresql`."
        )
    primary_port = primary_url.rsplit(":", 1)[1].split("/", 1)[0]
    data, log, socket_dir = workdir / "replica", workdir / "replica.log", workdir / "replica-socket"
    socket_dir.mkdir()
    owner = unprivileged_user()
    if owner:
        os.chown(socket_dir, owner.pw_uid, owner.pw_gid)
    port = free_port()
    print(f"starting throwaway PostgreSQL replica on 127.0.0.1:{port}", file=sys.stderr)
    subprocess.run(
        as_unprivileged(
            [
                *(pg_basebackup, "-h", "127.0.0.1", "-p", primary_port, "-U", "postgres", "-D", str(data)),
                *("-R", "-X", "stream", "-C", "-S", REPLICA_SLOT, "-c", "fast", "--no-sync"),
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # After the -R lines (primary_conninfo), so the standby's own settings win over the copied ones.
    with (data / "postgresql.auto.conf").open("a") as conf:
        conf.write(
            f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{socket_dir}'\n"
            f"hot_standby = on\nhot_standby_feedback = on\nfsync = off\nmax_connections = {MAX_CONNECTIONS}\n"
        )
    control = as_unprivileged([pg_ctl, "-D", str(data), "-l", str(log)])
    subprocess.run([*control, "-w", "start"], check=True, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, "PostgreSQL replica", log)
        yield f"postgres://postgres@127.0.0.1:{port}/postgres", control
    finally:
        subprocess.run([*control, "-m", "immediate", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextmanager
def throwaway_pgbouncer(workdir: Path, primary_url: str):
    """pgBouncer in transaction pooling on a free loopback port, in front of the throwaway primary."""
    pgbouncer = find_binary("pgbouncer", ("/usr/sbin/pgbouncer",), "pgbouncer")
    primary_port = primary_url.rsplit(":", 1)[1].split("/", 1)[0]
    port, config, log = free_port(), workdir / "pgbouncer.ini", workdir / "pgbouncer.log"
    (workdir / "pgbouncer-users.txt").write_text('"postgres" ""\n')
    config.write_text(
        "[databases]\n"
        f"* = host=127.0.0.1 port={primary_port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {workdir / 'pgbouncer-users.txt'}\n"
        "pool_mode = transaction\nmax_client_conn = 1000\ndefault_pool_size = 40\nadmin_users = postgres\n"
        f"max_db_connections = {MAX_CONNECTIONS // 2}\nlogfile = {log}\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
    )
    owner = unprivileged_user()
    if owner:
        for path in (config, workdir / "pgbouncer-users.txt"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    print(f"starting throwaway pgBouncer (transaction pooling) on 127.0.0.1:{port}", file=sys.stderr)
    # Its log is the logfile above; runuser and pgBouncer would also talk on stderr.
    process = subprocess.Popen(
        as_unprivileged([pgbouncer, str(config)]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, "pgBouncer", log)
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    finally:
        process.terminate()
        process.wait(timeout=10)


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
    flags: list[str] = []
    if "--" in argv:
        flags, argv = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    if not argv:
        raise SystemExit("usage: test_services.py [--replica | --no-replica] [--pgbouncer] -- COMMAND [ARGS...]")
    env = dict(os.environ)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ops-center-test-")))
        if not env.get("TEST_DATABASE_URL"):
            env["TEST_DATABASE_URL"] = stack.enter_context(throwaway_postgres(workdir))
            if replica_wanted(flags) and not env.get("TEST_DATABASE_REPLICA_URL"):
                replica_url, control = stack.enter_context(throwaway_replica(workdir, env["TEST_DATABASE_URL"]))
                env["TEST_DATABASE_REPLICA_URL"] = replica_url
                env["TEST_DATABASE_REPLICA_PG_CTL"] = json.dumps(control)
            if "--pgbouncer" in flags or os.environ.get("TEST_PGBOUNCER") == "1":
                try:
                    pgbouncer_url = stack.enter_context(throwaway_pgbouncer(workdir, env["TEST_DATABASE_URL"]))
                except MissingBinary:
                    # The pgBouncer pass's plugin (ops_center/tests/pgbouncer_pass.py) skips each test, saying why.
                    missing = "pgbouncer was not found: install it with `sudo apt-get install pgbouncer`"
                    print(f"warning: {missing}; the command runs without pgBouncer.", file=sys.stderr)
                    env["TEST_PGBOUNCER_MISSING"] = missing
                else:
                    env["TEST_DATABASE_URL"] = env["TEST_PGBOUNCER_URL"] = pgbouncer_url
                    env["DATABASE_POOL_MODE"] = "transaction"
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
