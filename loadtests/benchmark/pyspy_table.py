"""The top costs per request from a py-spy recording in ``--format raw`` (collapsed stacks).

    py-spy record --subprocesses -p <gunicorn master pid> --format raw -o stacks.txt -d 30
    python -m loadtests.benchmark.pyspy_table stacks.txt --requests 7500 [--rate 100] [--top 25]

Each line of the recording is ``frame;frame;...;frame COUNT``: COUNT samples
with that stack, one sample every 1/rate s of an active thread (py-spy leaves
idle threads out unless ``--idle``). A sample is then worth 1000/rate ms of
CPU, and a function's cost per request is the samples whose stack holds it
(inclusive: counted once per stack, however deep the recursion) or ends in it
(self), times that, divided by the requests served while recording. Frames
are grouped by function and file, the line numbers dropped.

py-spy falls behind on a loaded machine ("behind in sampling") and then takes
fewer samples than rate x seconds. ``--cpu-ms-per-request`` (the server CPU
per request that ``server_cpu`` measured over the same run) spreads that
figure by each function's share of the samples instead, which is robust to it.
"""

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")
PROCESS = re.compile(r"^(process|thread) ", re.IGNORECASE)


def frame_name(frame: str) -> str:
    """``get (django_redis/client/default.py:123)`` -> ``get (django_redis/client/default.py)``; the file shortened
    to its path inside site-packages or the project."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    file = match["file"].split("site-packages/")[-1].split("lib/python3")[-1]
    file = re.sub(r"^\.\d+/", "", file)
    return f"{match['function']} ({file})"


def read_stacks(path: Path) -> Counter:
    stacks: Counter = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = tuple(frame_name(frame) for frame in stack.split(";") if frame and not PROCESS.match(frame))
        stacks[frames] += int(count)
    return stacks


def costs(stacks: Counter) -> tuple[Counter, Counter, int]:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, count in stacks.items():
        for name in set(frames):
            inclusive[name] += count
        if frames:
            own[frames[-1]] += count
    return inclusive, own, sum(stacks.values())


def table(title: str, counter: Counter, total: int, ms_per_request: float, top: int) -> str:
    """``ms_per_request``: what all the samples together cost per request."""
    lines = [f"{title}", "| Function (file) | samples | share | CPU ms per request |", "|---|---:|---:|---:|"]
    for name, count in counter.most_common(top):
        per_request = ms_per_request * count / total
        lines.append(f"| `{name}` | {count} | {100 * count / total:.1f} % | {per_request:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.benchmark.pyspy_table", description=__doc__)
    parser.add_argument("recording", type=Path, help="py-spy record --format raw output")
    parser.add_argument("--requests", type=int, help="requests served while recording")
    parser.add_argument("--cpu-ms-per-request", type=float, help="server CPU per request measured over the run")
    parser.add_argument("--rate", type=int, default=100, help="py-spy's samples per second (default 100)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    inclusive, own, total = costs(read_stacks(args.recording))
    if not total:
        print(f"error: no samples in {args.recording}", file=sys.stderr)
        return 1
    if args.cpu_ms_per_request is not None:
        per_request = args.cpu_ms_per_request
        print(f"{total} samples, spread over the measured {per_request:.3f} ms of server CPU per request\n")
    elif args.requests:
        per_request = total * (1000 / args.rate) / args.requests
        print(f"{total} samples at {args.rate}/s over {args.requests} requests: {per_request:.3f} ms per request\n")
    else:
        parser.error("give --requests or --cpu-ms-per-request")
    print(table("Inclusive (the function and what it calls)", inclusive, total, per_request, args.top))
    print()
    print(table("Self (the function's own frames)", own, total, per_request, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
