"""Cache invalidation only, after commit: a changed or revoked key, or a changed
user (staff flag, tier, deactivation), must not authenticate from a stale entry,
and a changed membership must not grant or deny from a stale role.

Key and user evictions are durable (``invalidate_on_commit(durable=True)``): the
keys are written to the eviction backlog in the same transaction, so every
worker refuses a revoked or deactivated key within about a second even when
Redis was stalled or a concurrent request re-cached the principal.
"""

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from ops_center import cache
from ops_center.api.keys import principal_cache_key
from orgs.models import ApiKey, Membership
from orgs.selectors import role_cache_part


@receiver([post_save, post_delete], sender=ApiKey, dispatch_uid="orgs.evict_api_key")
def evict_api_key(sender, instance, **kwargs):
    cache.invalidate_on_commit(keys=[principal_cache_key(instance.key_hash)], durable=True)


@receiver([post_save, post_delete], sender=settings.AUTH_USER_MODEL, dispatch_uid="orgs.evict_user_keys")
def evict_user_keys(sender, instance, created=False, **kwargs):
    if created:
        return
    key_hashes = ApiKey.objects.filter(user_id=instance.pk).values_list("key_hash", flat=True)
    cache.invalidate_on_commit(keys=[principal_cache_key(key_hash) for key_hash in key_hashes], durable=True)


@receiver([post_save, post_delete], sender=Membership, dispatch_uid="orgs.evict_membership_role")
def evict_membership_role(sender, instance, **kwargs):
    role_key = cache.make_key("org_data", cache.org_part(instance.org_id), role_cache_part(user_id=instance.user_id))
    cache.invalidate_on_commit(keys=[role_key], user_ids=[instance.user_id], org_ids=[instance.org_id])
