"""Writes for identity and tenancy."""

from django.db import transaction
from django.utils import timezone

from ops_center import cache
from ops_center.api.keys import hash_api_key, principal_cache_key
from orgs.models import ApiKey, User, generate_api_key


@transaction.atomic
def api_key_create(*, user: User, name: str = "") -> tuple[ApiKey, str]:
    """Issue a key for ``user``. Returns the row and the raw key, which is never stored."""
    prefix, raw_key = generate_api_key()
    api_key = ApiKey.objects.create(user=user, name=name, prefix=prefix, key_hash=hash_api_key(raw_key))
    return api_key, raw_key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke at once; revoking twice keeps the first revocation time."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    # update() sends no signal, so evict the cached principal here, after commit; durable, so
    # every worker refuses the key within a second even if Redis is stalled right now.
    cache.invalidate_on_commit(keys=[principal_cache_key(api_key.key_hash)], durable=True)
    api_key.refresh_from_db(fields=["revoked_at"])
    return api_key
