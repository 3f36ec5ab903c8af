"""The README's API examples, run as written against `make run`'s own server and demo data.

The server is built the way `make run` builds it (SQLite, the in-process cache,
the Makefile's own `seed_demo` arguments, collectstatic, gunicorn). Every
```bash block of the README that calls the API is run in one bash, in order,
with only the host and port changed; curl reports each answer's status on
stderr, and every one must be a 2xx.
"""

import csv
import json
import re
import shlex
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from ops_center.tests.quickstart import PROJECT_DIR, free_port, manage, quickstart_env, start_gunicorn, wait_for

README_HOST = "http://127.0.0.1:8000"
# `NAME=value` or `NAME=$(...)` alone on its line (a comment may follow), not `NAME=value command`.
VARIABLE_ASSIGNMENT = re.compile(r"^[A-Z_]+=(\$\(.*\)|\S+)\s*(#.*)?$")
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)
# curl prints each transfer's status on stderr, leaving stdout to the commands that read it.
STATUS_PREFIX = "README-HTTP"
CURL_REPORTING_STATUS = (
    f"curl() {{ command curl --write-out '%{{stderr}}{STATUS_PREFIX} %{{http_code}} %{{url_effective}}\\n' \"$@\"; }}"
)


def readme_api_examples() -> str:
    blocks = BASH_BLOCK.findall((PROJECT_DIR / "README.md").read_text())
    return "\n".join(block for block in blocks if "curl " in block or _only_sets_variables(block))


def _only_sets_variables(block: str) -> bool:
    """A block like `KEY=$(awk ... var/demo-keys.csv)`: it picks what the examples after it use."""
    lines = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    return all(VARIABLE_ASSIGNMENT.match(line) for line in lines)


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
        yield folder, base_url
    finally:
        server.terminate()
        server.wait(timeout=20)


def run_examples(folder: Path, base_url: str) -> subprocess.CompletedProcess:
    examples = readme_api_examples().replace(README_HOST, base_url)
    script = "\n".join(["set -euo pipefail", CURL_REPORTING_STATUS, examples])
    bash = shutil.which("bash")
    # Our own README, against our own loopback server.
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


def test_every_readme_api_example_answers_2xx_on_the_demo_data(quickstart):
    folder, base_url = quickstart
    expected_calls = readme_api_examples().count("curl ")

    result = run_examples(folder, base_url)

    assert result.returncode == 0, result.stderr[-3000:]
    calls = answers(result)
    assert len(calls) == expected_calls, result.stderr[-3000:]
    assert [call for call in calls if not 200 <= call[0] < 300] == []


def test_the_readme_principals_have_data_to_show(quickstart):
    folder, base_url = quickstart
    user, staff = first_key(folder, "user"), first_key(folder, "staff")

    summary = api_get(base_url, "/credits/usage/summary?days=30", user["api_key"])
    past_due = api_get(base_url, "/org-billing/subscriptions?status=past_due", staff["api_key"])

    assert summary["total_credits"] != "0.0000"
    assert summary["by_service"]
    assert past_due["results"]
    statuses = api_get(base_url, "/org-billing/analytics/platform", staff["api_key"])["subscriptions"]["by_status"]
    assert all(count > 0 for count in statuses.values()), statuses
