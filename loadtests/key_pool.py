"""Keys from the seed_demo keys CSV, leased to simulated users by role.

Each simulated user logs in with a key of its own for as long as there are
enough of them: nothing else then writes to that user's balance, which is what
lets the purchase workflow demand that the balance rose by exactly the amount
bought. When a role has fewer keys than simulated users, later users share
(least-shared first) and the workflow check is skipped for shared ones: a
concurrent purchase by the other holder would make the check meaningless.
"""

from collections import defaultdict
from dataclasses import dataclass

from billing.demo.keys_csv import DemoKey, KeysFileError


@dataclass(eq=False)
class LeasedKey:
    """A key as the pool hands it out, with who holds it."""

    key: DemoKey
    holders: int = 0
    # Bumped every time a user takes this key, so a workflow can tell that
    # someone joined while it ran.
    leases: int = 0

    @property
    def exclusive(self) -> bool:
        return self.holders == 1


class KeyPool:
    """Leases the keys of one process; with several Locust workers each owns a disjoint slice."""

    def __init__(self, keys: list[DemoKey], partition: int = 0, partitions: int = 1):
        if partitions < 1 or not 0 <= partition < partitions:
            raise ValueError(f"bad partition {partition} of {partitions}")
        self.by_role: dict[str, list[LeasedKey]] = defaultdict(list)
        for index, key in enumerate(keys):
            if index % partitions == partition:
                self.by_role[key.role].append(LeasedKey(key))

    def lease(self, role: str) -> LeasedKey:
        candidates = self.by_role.get(role)
        if not candidates:
            raise KeysFileError(f"the keys file has no principal with role {role!r} for this process")
        # min() keeps the CSV order among equals, so leases are deterministic.
        leased = min(candidates, key=lambda candidate: candidate.holders)
        leased.holders += 1
        leased.leases += 1
        return leased

    @staticmethod
    def release(leased: LeasedKey) -> None:
        leased.holders -= 1
