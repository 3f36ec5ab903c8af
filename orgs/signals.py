"""Cache invalidation only, after commit: a changed or revoked key, or a changed
user (staff flag, tier, deactivation), must not authenticate from a stale entry.
"""

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from ops_center import cache
from ops_center.api.authentication import principal_cache_key
from orgs.models import ApiKey


@receiver([post_save, post_delete], sender=ApiKey, dispatch_uid="orgs.evict_api_key")
def evict_api_key(sender, instance, **kwargs):
    cache.invalidate_on_commit(keys=[principal_cache_key(instance.key_hash)])


@receiver([post_save, post_delete], sender=settings.AUTH_USER_MODEL, dispatch_uid="orgs.evict_user_keys")
def evict_user_keys(sender, instance, created=False, **kwargs):
    if created:
        return
    key_hashes = ApiKey.objects.filter(user_id=instance.pk).values_list("key_hash", flat=True)
    cache.invalidate_on_commit(keys=[principal_cache_key(key_hash) for key_hash in key_hashes])
