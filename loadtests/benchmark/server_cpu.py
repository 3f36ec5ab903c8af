"""CPU seconds per request of the server's process group, read from /proc, and of the client itself.

The server is a gunicorn master and its workers. A sample is the sum, over
the master and every live descendant, of utime + stime + cutime + cstime
from ``/proc/PID/stat``: the children's fields hold the CPU of descendants
already reaped, so a worker recycled mid-run (``max_requests``) is still
counted, once, in its parent's figure. CPU per request is the difference
between a sample after the measured phase and one before it, divided by the
requests completed in between.

The master is found by the port it listens on (``/proc/net/tcp*`` gives the
listening socket's inode, ``/proc/*/fd`` the processes holding it; the
master is the holder whose parent does not hold it), or given by PID. A host
that is not this machine's loopback cannot be read: the figure is then
reported as not measured, never guessed.

Command line, for the load runner (bash) and scripts::

    python -m loadtests.benchmark.server_cpu find --port 8000
    python -m loadtests.benchmark.server_cpu snapshot --port 8000 --out before.json
    python -m loadtests.benchmark.server_cpu report --before before.json --summary results/k6_summary.json \\
        --client-times-before t0 --client-times-after t1
"""

import argparse
import ipaddress
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
LISTEN = "0A"  # TCP state in /proc/net/tcp
NOT_MEASURED_REMOTE = "remote host"
SOURCE = "/proc/PID/stat utime+stime+cutime+cstime of the root and its descendants"


@dataclass(frozen=True)
class Sample:
    root: int
    pids: tuple[int, ...]
    cpu_s: float


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces); None if the process is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _parents() -> dict[int, int]:
    """Every live process and its parent."""
    parents = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents[int(entry.name)] = int(fields[1])  # ppid, field 4 of stat
    return parents


def process_tree(root: int) -> list[int]:
    """The root and all its live descendants, root first."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    tree, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        tree.append(pid)
        queue.extend(sorted(children.get(pid, [])))
    return tree


def read_cpu_s(pid: int) -> float | None:
    """utime + stime + cutime + cstime of one process, in seconds; None if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def process_cpu_s(pid: int) -> float:
    """As read_cpu_s, with 0 for a process that is gone."""
    return read_cpu_s(pid) or 0.0


def sample(root: int) -> Sample:
    if _stat_fields(root) is None:
        raise ProcessLookupError(f"no process {root}")
    pids = tuple(process_tree(root))
    return Sample(root=root, pids=pids, cpu_s=sum(process_cpu_s(pid) for pid in pids))


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and int(local.rsplit(":", 1)[1], 16) == port and inode != "0":
                inodes.add(inode)
    return inodes


def find_listener(port: int) -> int | None:
    """The PID of the process group's root that listens on ``port`` (gunicorn's master), or None."""
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not sockets:
        return None
    holders = set()
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:  # gone, or another user's process
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in sockets:
                    holders.add(int(entry.name))
                    break
            except OSError:
                continue
    parents = _parents()
    roots = sorted(pid for pid in holders if parents.get(pid) not in holders)
    return roots[0] if roots else None


def is_local(host_url: str) -> bool:
    hostname = urlsplit(host_url).hostname or ""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def locate(host_url: str, pid: int | None = None) -> tuple[int | None, str]:
    """(server PID, how it was found) or (None, why not)."""
    if pid is not None:
        return (pid, "given") if _stat_fields(pid) is not None else (None, f"no process {pid}")
    if not is_local(host_url):
        return None, NOT_MEASURED_REMOTE
    port = urlsplit(host_url).port or (443 if urlsplit(host_url).scheme == "https" else 80)
    found = find_listener(port)
    if found is None:
        return None, f"no readable process listens on port {port}"
    return found, f"listening on port {port}"


def client_cpu_s() -> float:
    """This process's own CPU (every thread) plus its reaped children's."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Meter:
    """Server and client CPU over one measured phase: ``start()``, then ``stop(requests)`` gives the figures."""

    def __init__(self, server_pid: int | None, reason: str) -> None:
        self.server_pid, self.reason = server_pid, reason
        self._server: Sample | None = None
        self._client = 0.0

    def start(self) -> None:
        self._client = client_cpu_s()
        if self.server_pid is not None:
            try:
                self._server = sample(self.server_pid)
            except ProcessLookupError as exc:
                self.server_pid, self.reason = None, str(exc)

    def stop(self, requests: int) -> dict:
        client = client_cpu_s() - self._client
        figures = {"client_cpu": cpu_figures(client, requests)}
        if self._server is None or self.server_pid is None:
            figures["server_cpu"] = not_measured(self.reason)
            return figures
        try:
            after = sample(self.server_pid)
        except ProcessLookupError as exc:
            figures["server_cpu"] = not_measured(str(exc))
            return figures
        figures["server_cpu"] = server_figures(self._server, after, requests, self.reason)
        return figures


def cpu_figures(cpu_s: float, requests: int) -> dict:
    return {
        "measured": True,
        "cpu_s": round(cpu_s, 3),
        "requests": requests,
        "ms_per_request": round(1000 * cpu_s / requests, 4) if requests else None,
    }


def server_figures(before: Sample, after: Sample, requests: int, found_by: str = "") -> dict:
    return {
        **cpu_figures(after.cpu_s - before.cpu_s, requests),
        "pid": before.root,
        "found_by": found_by,
        "processes": len(after.pids),
        "pids": list(after.pids),
    }


def not_measured(reason: str) -> dict:
    return {"measured": False, "reason": reason}


def describe(figures: dict, label: str = "Server CPU") -> str:
    """One line: ``Server CPU:    1.234 ms/request (3.70 s over 3 processes, pid 41 and descendants)``."""
    if not figures.get("measured"):
        return f"{label + ':':<15}not measured ({figures.get('reason', 'unknown')})"
    per_request = figures["ms_per_request"]
    line = (
        f"{label + ':':<15}{'-' if per_request is None else f'{per_request:.3f}'} ms/request ({figures['cpu_s']:.2f} s"
    )
    if "processes" in figures:
        line += f" over {figures['processes']} processes, pid {figures['pid']} and descendants"
    return line + ")"


# --- command line -----------------------------------------------------------------------------------------


def _read_times(path: Path) -> float:
    """Children's user + system seconds from the output of bash's ``times`` builtin (its second line)."""
    lines = path.read_text().split("\n")
    total = 0.0
    for value in lines[1].split():
        minutes, seconds = value.rstrip("s").split("m")
        total += 60 * int(minutes) + float(seconds)
    return total


def _requests_in(summary: dict) -> int:
    """Requests completed, from a k6 or Locust summary of this project's load tests."""
    if summary.get("tool") == "k6":
        return int(summary.get("requests") or 0)
    return int((summary.get("overall") or {}).get("requests") or 0)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.benchmark.server_cpu", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    find = commands.add_parser("find", help="print the PID listening on --port")
    find.add_argument("--port", type=int, required=True)
    snapshot = commands.add_parser("snapshot", help="sample the server's CPU into --out")
    snapshot.add_argument("--port", type=int)
    snapshot.add_argument("--pid", type=int)
    snapshot.add_argument("--out", type=Path, required=True)
    report = commands.add_parser("report", help="add server and client CPU per request to a load-test summary")
    report.add_argument("--before", type=Path, required=True)
    report.add_argument("--summary", type=Path, required=True, help="locust_summary.json or k6_summary.json")
    report.add_argument("--client-times-before", type=Path, help="bash `times` output before the run")
    report.add_argument("--client-times-after", type=Path, help="bash `times` output after the run")
    args = parser.parse_args(argv)

    if args.command == "find":
        pid = find_listener(args.port)
        if pid is None:
            return 1
        print(pid)
        return 0
    if args.command == "snapshot":
        pid, how = locate(f"http://127.0.0.1:{args.port}", args.pid) if args.port or args.pid else (None, "no server")
        state: dict[str, object] = {"pid": pid, "found_by": how, "taken_at": time.time()}
        if pid is not None:
            taken = sample(pid)
            state.update(pids=list(taken.pids), cpu_s=taken.cpu_s)
        args.out.write_text(json.dumps(state))
        return 0
    return _report(args)


def _report(args) -> int:
    state = json.loads(args.before.read_text())
    try:
        summary = json.loads(args.summary.read_text())
    except (OSError, ValueError) as exc:
        print(f"server CPU: no summary to add it to ({exc})", file=sys.stderr)
        return 1
    if args.summary.stat().st_mtime < state.get("taken_at", 0):
        print(f"server CPU: {args.summary} is from an earlier run; not changed", file=sys.stderr)
        return 1
    requests = _requests_in(summary)
    if state.get("pid") is None:
        summary["server_cpu"] = not_measured(state.get("found_by", "no server"))
    else:
        before = Sample(root=state["pid"], pids=tuple(state["pids"]), cpu_s=state["cpu_s"])
        try:
            summary["server_cpu"] = server_figures(before, sample(state["pid"]), requests, state["found_by"])
        except ProcessLookupError as exc:
            summary["server_cpu"] = not_measured(str(exc))
    if args.client_times_before and args.client_times_after:
        client = _read_times(args.client_times_after) - _read_times(args.client_times_before)
        summary["client_cpu"] = cpu_figures(client, requests) | {"source": "load generator processes (bash times)"}
    args.summary.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"{summary.get('tool', 'run')}: {requests} requests")
    print(describe(summary["server_cpu"]))
    if "client_cpu" in summary:
        print(describe(summary["client_cpu"], "Client CPU"))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
