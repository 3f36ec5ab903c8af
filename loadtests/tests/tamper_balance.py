"""A Locust plugin for the tests only: makes the server's balance wrong, for the workflow check to catch.

Loaded next to the real locustfile (`-f loadtests/locustfile.py,loadtests/tests/tamper_balance.py`).
Right after the workflow has read the balance it starts from, and before it
buys, it takes one credit off the buyer's balance with a real write to the
test database, behind the server's back. Locust fires the request event in
the user's own greenlet as the read's `with` block closes, so the write
always lands between the first read and the purchase: deterministic, and no
server code or setting is involved. The purchase then adds to the tampered
row and puts that balance in the cache, so the re-check reads one credit
less than the workflow expects.
"""

import os

import psycopg
from locust import events

TAMPER_SQL = (
    "UPDATE billing_creditaccount SET balance = balance - 1 "
    "WHERE user_id = (SELECT id FROM orgs_user WHERE username = %s)"
)


@events.request.add_listener
def take_one_credit_before_each_workflow_purchase(name, context, exception=None, response=None, **kwargs):
    if name != "workflow_balance_before" or exception or response is None or response.status_code != 200:
        return
    with psycopg.connect(os.environ["TAMPER_DATABASE_URL"], autocommit=True) as connection:
        connection.execute(TAMPER_SQL, (context["username"],))
