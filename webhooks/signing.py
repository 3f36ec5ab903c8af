"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The secret is ``whsec_`` and base64 of 32 random bytes. Each request carries
``webhook-id`` (the event's id, the same on every retry), ``webhook-timestamp``
(Unix seconds of this attempt) and ``webhook-signature``: ``v1,`` and the base64
HMAC-SHA256 of ``{id}.{timestamp}.{body}`` under the secret's bytes. While an old
secret is still valid after a rotation, the header holds both signatures,
separated by a space; receivers accept a request when any of them verifies.
"""

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def signature_header(secrets_in_use: list[str], *, msg_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(sign(secret, msg_id=msg_id, timestamp=timestamp, body=body) for secret in secrets_in_use)
