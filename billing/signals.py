"""Cache invalidation only, always after commit (a rollback evicts nothing).

Ledger rows are not here: every balance change appends its row through
``billing.services.write_ledger``, which evicts the views it changes itself.
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from billing.models import CreditAllocation, PricingRule
from billing.selectors import pricing_rule_part
from ops_center import cache


@receiver(post_save, sender=CreditAllocation, dispatch_uid="billing.evict_on_allocation_change")
def evict_on_allocation_change(sender, instance, **kwargs):
    cache.invalidate_on_commit(user_ids=[instance.user_id])


@receiver([post_save, post_delete], sender=PricingRule, dispatch_uid="billing.evict_pricing_rule")
def evict_pricing_rule(sender, instance, **kwargs):
    cache.invalidate_on_commit(keys=[cache.make_key("pricing_rules", pricing_rule_part(service=instance.service))])
