"""A Locust plugin for the tests only: makes the server's balance wrong, for the workflow check to catch.

Loaded next to the real locustfile (`-f loadtests/locustfile.py,loadtests/tests/tamper_balance.py`).
Right after each workflow purchase has answered, and before the workflow
reads the balance again, it takes one credit off the buyer's balance with a
real write to the test database. Locust fires the request event in the
user's own greenlet as the purchase's `with` block closes, so the write
always lands between the purchase and the re-check: deterministic, and no
server code or setting is involved. The purchase has already evicted the
cached balance, so the re-check reads the tampered row.
"""

import os

import psycopg
from locust import events

TAMPER_SQL = (
    "UPDATE billing_creditaccount SET balance = balance - 1 "
    "WHERE user_id = (SELECT id FROM orgs_user WHERE username = %s)"
)


@events.request.add_listener
def take_one_credit_after_each_workflow_purchase(name, context, exception=None, response=None, **kwargs):
    if name != "workflow_purchase" or exception or response is None or response.status_code != 201:
        return
    with psycopg.connect(os.environ["TAMPER_DATABASE_URL"], autocommit=True) as connection:
        connection.execute(TAMPER_SQL, (context["username"],))
