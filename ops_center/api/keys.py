"""The stored form of an API key, shared by the key model and the authentication that looks it up."""

import hashlib


def hash_api_key(raw_key: str) -> str:
    """Keys carry 256 bits of randomness, so a fast hash is safe and keeps auth cheap."""
    return hashlib.sha256(raw_key.encode()).hexdigest()
