"""The keys CSV that ``seed_demo --keys-out`` writes: one demo API key a row, with the role it logs in as.

The load tests, the benchmark and ``demo_info`` all read it with ``read_keys_csv``.
Nothing here imports Django, so Locust processes read it without settings.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

COLUMNS = ("username", "role", "org_id", "api_key", "user_id")
# What the readers use; user_id is for people matching a key to the admin.
REQUIRED_COLUMNS = ("username", "role", "org_id", "api_key")


class KeysFileError(ValueError):
    """The keys file is missing, or is not a seed_demo keys CSV."""


@dataclass(frozen=True)
class DemoKey:
    """One row: a raw API key and who it logs in as."""

    username: str
    role: str  # an ApiRole value: user, org_admin, org_member or staff
    org_id: int | None
    api_key: str

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def read_keys_csv(path: str | Path) -> list[DemoKey]:
    """Every row that holds a key, in file order (seed_demo writes each role's busiest user first)."""
    path = Path(path)
    if not path.is_file():
        raise KeysFileError(
            f"keys file {path} not found: write one with `manage.py seed_demo ... --keys-out {path}` "
            "and pass it with --keys"
        )
    with path.open(newline="") as keys_file:
        reader = csv.DictReader(keys_file)
        missing = [column for column in REQUIRED_COLUMNS if column not in (reader.fieldnames or ())]
        if missing:
            raise KeysFileError(f"keys file {path} is not a seed_demo keys CSV: it lacks {', '.join(missing)}")
        return [
            DemoKey(
                username=row["username"],
                role=row["role"],
                org_id=int(row["org_id"]) if row["org_id"] else None,
                api_key=row["api_key"],
            )
            for row in reader
            if row["api_key"]
        ]
