"""An Idempotency-Key claimed inside a write's own statement, without HTTP: services may use it.

``ops_center.api.idempotency`` explains the records; a claim is one whose
answer is left NULL, to be rendered from the write's rows on replay.
"""

from dataclasses import dataclass

from ops_center.models import IdempotencyRecord


@dataclass(frozen=True)
class Claim:
    """A key to record inside a write's own statement, for an answer rendered from its rows on replay."""

    user_id: int
    key: str
    endpoint: str
    request_fingerprint: str

    def params(self) -> list:
        """The parameters of ``CLAIM_INSERT``."""
        return [self.user_id, self.key, self.endpoint, self.request_fingerprint]


# Followed by `FROM <a CTE that yields one row when the write happened>`. No ON CONFLICT: a key
# already taken fails the whole statement, so its write is undone with it.
CLAIM_INSERT = (
    f"INSERT INTO {IdempotencyRecord._meta.db_table} "
    "(user_id, key, endpoint, request_fingerprint, status_code, response_body, created_at) "
    "SELECT %s, %s, %s, %s, NULL, NULL, CURRENT_TIMESTAMP"
)
