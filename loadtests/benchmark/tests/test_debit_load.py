"""The debit load tool against a real gunicorn on the test database: every debit lands, and the books balance."""

import csv
import json
import shutil
import subprocess
import sys
from decimal import Decimal

import pytest

from billing.models import CreditAccount, CreditTransaction
from billing.services import credits_purchase
from ops_center.tests.live_server import PROJECT_DIR, LiveGunicorn
from orgs.services import api_key_create
from orgs.tests.factories import UserFactory

DEBIT = Decimal("0.0001")
CONNECTIONS = 4


@pytest.mark.django_db(transaction=True)
def test_many_and_hot_runs_debit_exactly_what_they_report(tmp_path, default_catalog):
    if shutil.which("wrk") is None:
        pytest.skip("needs wrk (sudo apt-get install wrk); .ci/run installs it")
    users = UserFactory.create_batch(3)
    for credits, user in zip(("100", "50", "10"), users, strict=True):
        credits_purchase(user=user, credits=Decimal(credits))
    keys = tmp_path / "keys.csv"
    with keys.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("username", "role", "org_id", "api_key", "user_id"))
        writer.writerows((user.username, "user", "", api_key_create(user=user)[1], user.pk) for user in users)
    server = LiveGunicorn(WEB_CONCURRENCY="2", THROTTLE_WRITES="1000000/min").start()
    output = tmp_path / "debits.json"
    try:
        result = subprocess.run(
            [
                *(sys.executable, "-m", "loadtests.benchmark.debit_load", "--host", server.url, "--keys", str(keys)),
                *("--rounds", "1", "--duration", "1", "--connections", str(CONNECTIONS), "--output", str(output)),
            ],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.stop()

    assert result.returncode == 0, result.stdout + result.stderr
    runs = json.loads(output.read_text())["runs"]
    many, hot = runs[f"{server.url} many"][0], runs[f"{server.url} hot"][0]
    assert many["requests"] > 0
    assert hot["requests"] > 0
    assert (many["non_2xx"], hot["non_2xx"]) == (0, 0)
    assert many["server_cpu_ms_per_request"] > 0
    # Every answered request is a committed debit; wrk does not count the few still in flight when it stops.
    debits = CreditTransaction.objects.filter(transaction_type="usage")
    answered = many["requests"] + hot["requests"]
    assert answered <= debits.count() <= answered + 2 * CONNECTIONS
    hot_debits = debits.filter(user=users[0]).count()
    assert hot_debits >= hot["requests"]
    assert CreditAccount.objects.get(user=users[0]).balance == Decimal("100") - DEBIT * hot_debits
