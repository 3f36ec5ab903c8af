"""The README's tour and the docs' API examples, run as written against `make run`'s own server and demo data.

The server is built the way `make run` builds it (SQLite, the in-process cache,
the Makefile's own `seed_demo` arguments, collectstatic, gunicorn). Every
```bash block of README.md, and of each docs/*.md file, that calls `curl` or
only sets variables is run, one bash per file and in order, with only the host
and port changed; curl reports each answer's status on stderr, and every one
must be a 2xx. Each file's examples therefore stand on their own: a doc picks
its own keys. Examples not meant to run against `make run` use a ```sh or
```console fence. Then the tour's benchmark and short load run are run with
the arguments the README gives them.
"""

import csv
import json
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from ops_center.tests.quickstart import PROJECT_DIR, free_port, manage, quickstart_env, start_gunicorn, wait_for

README = PROJECT_DIR / "README.md"
DOCS = PROJECT_DIR / "docs"
README_HOST = "http://127.0.0.1:8000"
# `NAME=value` or `NAME=$(...)` alone on its line (a comment may follow), not `NAME=value command`.
VARIABLE_ASSIGNMENT = re.compile(r"^[A-Z_]+=(\$\(.*\)|\S+)\s*(#.*)?$")
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)
# curl prints each transfer's status on stderr, leaving stdout to the commands that read it.
STATUS_PREFIX = "README-HTTP"
CURL_REPORTING_STATUS = (
    f"curl() {{ command curl --write-out '%{{stderr}}{STATUS_PREFIX} %{{http_code}} %{{url_effective}}\\n' \"$@\"; }}"
)
BENCHMARK_COMMAND = ".venv/bin/python manage.py benchmark "
LOAD_RUN_COMMAND = "make loadtest LOADTEST_ARGS="


def api_examples(path: Path) -> str:
    blocks = BASH_BLOCK.findall(path.read_text())
    return "\n".join(block for block in blocks if "curl " in block or _only_sets_variables(block))


def _only_sets_variables(block: str) -> bool:
    """A block like `KEY=$(awk ... var/demo-keys.csv)`: it picks what the examples after it use."""
    lines = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    return all(VARIABLE_ASSIGNMENT.match(line) for line in lines)


def files_with_examples() -> list[Path]:
    docs = sorted(path for path in DOCS.glob("*.md") if "curl " in api_examples(path))
    return [README, *docs]


def tour_commands(prefix: str) -> list[str]:
    """The README's bash lines that start with ``prefix`` (the tour's benchmark or load run)."""
    lines = (line.strip() for block in BASH_BLOCK.findall(README.read_text()) for line in block.splitlines())
    return [line for line in lines if line.startswith(prefix)]


def make_demo_arguments(keys_csv: Path) -> list[str]:
    """The `seed_demo` arguments of the Makefile's demo target, so the data is exactly `make run`'s."""
    recipe = next(line for line in (PROJECT_DIR / "Makefile").read_text().splitlines() if "seed_demo" in line)
    arguments = shlex.split(recipe.split("seed_demo", 1)[1])
    return [str(keys_csv) if argument == "var/demo-keys.csv" else argument for argument in arguments]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quickstart")
    keys_csv = folder / "var" / "demo-keys.csv"
    env = quickstart_env(folder)
    for step in (
        ["migrate", "--no-input"],
        ["seed_demo", *make_demo_arguments(keys_csv)],
        ["collectstatic", "--no-input", "--verbosity", "0"],
    ):
        result = manage(env, *step)
        assert result.returncode == 0, result.stdout + result.stderr
    port = free_port()
    env.update(SESSION_COOKIE_SECURE="0", CSRF_COOKIE_SECURE="0")
    server = start_gunicorn(env, port)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base_url}/healthz", server)
        yield folder, base_url, env, server.pid
    finally:
        server.terminate()
        server.wait(timeout=20)


def run_examples(examples: str, folder: Path, base_url: str) -> subprocess.CompletedProcess:
    script = "\n".join(["set -euo pipefail", CURL_REPORTING_STATUS, examples.replace(README_HOST, base_url)])
    bash = shutil.which("bash")
    # Our own documentation, against our own loopback server.
    return subprocess.run([bash, "-c", script], cwd=folder, capture_output=True, text=True, timeout=120, check=False)


def answers(result: subprocess.CompletedProcess) -> list[tuple[int, str]]:
    lines = [line.split(" ", 2) for line in result.stderr.splitlines() if line.startswith(STATUS_PREFIX)]
    return [(int(status), url) for _, status, url in lines]


def api_get(base_url: str, path: str, key: str) -> dict:
    request = urllib.request.Request(f"{base_url}/api/v1{path}", headers={"Authorization": f"Bearer {key}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return json.load(response)


def first_key(folder: Path, role: str) -> dict:
    with (folder / "var" / "demo-keys.csv").open() as keys:
        return next(row for row in csv.DictReader(keys) if row["role"] == role)


def test_the_examples_cover_the_tour_and_the_api_docs():
    covered = [path.relative_to(PROJECT_DIR).as_posix() for path in files_with_examples()]

    assert {"README.md", "docs/api.md", "docs/org-billing.md", "docs/webhooks.md"} <= set(covered)
    for part in ("/credits/balance", "/credits/purchases", "/credits/usage", "/credit-pool/allocations"):
        assert part in api_examples(README), f"the README tour lost its {part} example"


@pytest.mark.parametrize("path", files_with_examples(), ids=lambda path: path.relative_to(PROJECT_DIR).as_posix())
def test_every_api_example_answers_2xx_on_the_demo_data(quickstart, path):
    folder, base_url, _env, _pid = quickstart
    examples = api_examples(path)
    expected_calls = examples.count("curl ")

    result = run_examples(examples, folder, base_url)

    assert result.returncode == 0, result.stderr[-3000:]
    calls = answers(result)
    assert len(calls) == expected_calls, result.stderr[-3000:]
    assert [call for call in calls if not 200 <= call[0] < 300] == []


def test_the_readme_principals_have_data_to_show(quickstart):
    folder, base_url, _env, _pid = quickstart
    user, staff = first_key(folder, "user"), first_key(folder, "staff")

    summary = api_get(base_url, "/credits/usage/summary?days=30", user["api_key"])
    past_due = api_get(base_url, "/org-billing/subscriptions?status=past_due", staff["api_key"])

    assert summary["total_credits"] != "0.0000"
    assert summary["by_service"]
    assert past_due["results"]
    statuses = api_get(base_url, "/org-billing/analytics/platform", staff["api_key"])["subscriptions"]["by_status"]
    assert all(count > 0 for count in statuses.values()), statuses


def test_the_tour_benchmark_runs_as_written(quickstart):
    folder, base_url, env, pid = quickstart
    [command] = tour_commands(BENCHMARK_COMMAND)
    arguments = shlex.split(command)[1:]  # manage.py benchmark ...; the interpreter is this test's own

    where = ["--host", base_url, "--keys", str(folder / "var" / "demo-keys.csv"), "--server-pid", str(pid)]

    result = subprocess.run(
        [sys.executable, *arguments, *where],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    iterations = int(arguments[arguments.index("--iterations") + 1])
    assert f"Success:       {iterations}/{iterations} (100.0%)" in result.stdout, result.stdout[-3000:]


def test_the_tour_load_run_runs_as_written(quickstart):
    folder, base_url, env, pid = quickstart
    [command] = tour_commands(LOAD_RUN_COMMAND)
    arguments = shlex.split(shlex.split(command)[2].removeprefix("LOADTEST_ARGS="))
    recipe = (PROJECT_DIR / "Makefile").read_text().split("\nloadtest:", 1)[1].splitlines()[1].strip()
    assert recipe == "bash loadtests/run_load_tests.sh $(LOADTEST_ARGS)"  # what `make loadtest` runs
    where = ["--host", base_url, "--keys", str(folder / "var" / "demo-keys.csv"), "--server-pid", str(pid)]

    result = subprocess.run(
        [shutil.which("bash"), "loadtests/run_load_tests.sh", *arguments, *where, "--results", str(folder / "results")],
        cwd=PROJECT_DIR,
        env={**env, "VENV_BIN": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((folder / "results" / "locust_summary.json").read_text())
    assert summary["passed"], summary["thresholds"]
    assert summary["overall"]["requests"] > 0, summary["overall"]
