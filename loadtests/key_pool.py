"""Principals from the seed_demo keys CSV, handed to simulated users by role.

Each simulated user logs in as its own principal for as long as there are
enough of them: nothing else then writes to that user's balance, which is what
lets the purchase workflow demand that the balance rose by exactly the amount
bought. When a role has fewer principals than simulated users, later users
share (least-shared first) and the workflow check is skipped for shared ones:
a concurrent purchase by the other holder would make the check meaningless.
"""

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED_COLUMNS = ("username", "role", "org_id", "api_key")


class KeysFileError(Exception):
    pass


@dataclass(eq=False)
class Principal:
    username: str
    role: str
    org_id: int | None
    api_key: str
    holders: int = 0
    # Bumped every time a user takes this principal, so a workflow can tell
    # that someone joined while it ran.
    leases: int = field(default=0)

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def exclusive(self) -> bool:
        return self.holders == 1


def read_keys_csv(path: str | Path) -> list[Principal]:
    path = Path(path)
    if not path.is_file():
        raise KeysFileError(
            f"keys file {path} not found: write one with `manage.py seed_demo ... --keys-out {path}` "
            "and pass it with --keys or LOCUST_KEYS_FILE"
        )
    with path.open(newline="") as keys_file:
        reader = csv.DictReader(keys_file)
        missing = [column for column in REQUIRED_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise KeysFileError(f"keys file {path} lacks the columns {', '.join(missing)}")
        return [
            Principal(
                username=row["username"],
                role=row["role"],
                org_id=int(row["org_id"]) if row["org_id"] else None,
                api_key=row["api_key"],
            )
            for row in reader
            if row["api_key"]
        ]


class PrincipalPool:
    """Leases principals of one process; with several Locust workers each owns a disjoint slice."""

    def __init__(self, principals: list[Principal], partition: int = 0, partitions: int = 1):
        if partitions < 1 or not 0 <= partition < partitions:
            raise ValueError(f"bad partition {partition} of {partitions}")
        self.by_role: dict[str, list[Principal]] = defaultdict(list)
        for index, principal in enumerate(principals):
            if index % partitions == partition:
                self.by_role[principal.role].append(principal)

    def count(self, role: str) -> int:
        return len(self.by_role.get(role, ()))

    def lease(self, role: str) -> Principal:
        candidates = self.by_role.get(role)
        if not candidates:
            raise KeysFileError(f"the keys file has no principal with role {role!r} for this process")
        # min() keeps the CSV order among equals, so leases are deterministic.
        principal = min(candidates, key=lambda candidate: candidate.holders)
        principal.holders += 1
        principal.leases += 1
        return principal

    @staticmethod
    def release(principal: Principal) -> None:
        principal.holders -= 1
