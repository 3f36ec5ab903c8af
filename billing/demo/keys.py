"""API keys for a sample of demo principals, and the CSV the load tests log in with.

The raw keys exist only in memory and in that CSV; the database keeps hashes.
"""

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from billing.demo.keys_csv import COLUMNS
from billing.demo.population import ApiRole, DemoUser
from ops_center.api.keys import hash_api_key
from orgs.models import generate_api_key

API_KEY_COLUMNS = ("user_id", "name", "prefix", "key_hash", "created_at")
DEMO_KEY_NAME = "demo load test"
# Enough distinct identities for the load-test personas; every staff user gets one.
KEY_SAMPLE_LIMITS = {
    ApiRole.USER: 200,
    ApiRole.ORG_ADMIN: 100,
    ApiRole.ORG_MEMBER: 100,
    ApiRole.STAFF: None,
}


@dataclass(frozen=True)
class IssuedKey:
    user: DemoUser
    prefix: str
    raw_key: str


def issue_demo_keys(rng: random.Random, users: list[DemoUser]) -> list[IssuedKey]:
    issued = []
    for role, limit in KEY_SAMPLE_LIMITS.items():
        candidates = [user for user in users if user.api_role is role]
        if limit is not None and len(candidates) > limit:
            candidates = rng.sample(candidates, limit)
        # Busiest first: the README's examples take each role's first row, and it has history to show.
        for user in sorted(candidates, key=lambda user: (-user.ledger_rows, user.id)):
            prefix, raw_key = generate_api_key()
            issued.append(IssuedKey(user=user, prefix=prefix, raw_key=raw_key))
    return issued


def api_key_rows(issued: list[IssuedKey], now) -> list[tuple]:
    return [(key.user.id, DEMO_KEY_NAME, key.prefix, hash_api_key(key.raw_key), now) for key in issued]


def write_keys_csv(path: Path, issued: list[IssuedKey]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")  # shell tools read it line by line
        writer.writerow(COLUMNS)
        for key in issued:
            org_id = "" if key.user.org_id is None else key.user.org_id
            writer.writerow((key.user.username, key.user.api_role.value, org_id, key.raw_key, key.user.id))
