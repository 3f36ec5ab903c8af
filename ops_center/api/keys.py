"""An API key's stored form and its cached principal's key, shared by orgs (which owns the keys and
authenticates them) and the fast read path (which reads the principal in its one MGET)."""

import hashlib

from ops_center import cache

PRINCIPAL_NAMESPACE = "user_tier"


def hash_api_key(raw_key: str) -> str:
    """Keys carry 256 bits of randomness, so a fast hash is safe and keeps auth cheap."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def principal_part(key_hash: str) -> str:
    return f"apikey_{key_hash}"


def principal_cache_key(key_hash: str) -> str:
    return cache.make_key(PRINCIPAL_NAMESPACE, principal_part(key_hash))
