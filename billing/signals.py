"""Cache invalidation only, always after commit (a rollback evicts nothing).

Every balance change writes a ledger row through ``objects.create``, so the
ledger's post_save is the one place that sees them all, including those whose
counters moved through ``QuerySet.update()``.
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from billing.models import CreditAllocation, CreditTransaction, PricingRule
from billing.selectors import pricing_rule_part
from ops_center import cache


@receiver(post_save, sender=CreditTransaction, dispatch_uid="billing.evict_on_ledger_write")
def evict_on_ledger_write(sender, instance, created, **kwargs):
    cache.invalidate_on_commit(user_ids=[instance.user_id], org_ids=[instance.org_id] if instance.org_id else [])


@receiver(post_save, sender=CreditAllocation, dispatch_uid="billing.evict_on_allocation_change")
def evict_on_allocation_change(sender, instance, **kwargs):
    cache.invalidate_on_commit(user_ids=[instance.user_id])


@receiver([post_save, post_delete], sender=PricingRule, dispatch_uid="billing.evict_pricing_rule")
def evict_pricing_rule(sender, instance, **kwargs):
    cache.invalidate_on_commit(keys=[cache.make_key("pricing_rules", pricing_rule_part(instance.service))])
