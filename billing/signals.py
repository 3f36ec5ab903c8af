"""Cache invalidation only, always after commit (a rollback evicts nothing).

Ledger rows are not here: every balance change appends its row through
``billing.services.write_ledger``, which evicts the views it changes itself.
The receivers below catch the rest: an allocation's row, and the staff's
edits in the admin of what no ledger row records (a subscription, its plan,
a pool's refresh date).
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from billing.changes import ALLOCATION
from billing.models import CreditAllocation, CreditPool, Plan, PricingRule, Subscription
from billing.selectors import pricing_rule_part
from ops_center import cache


@receiver([post_save, post_delete], sender=CreditAllocation, dispatch_uid="billing.evict_on_allocation_change")
def evict_on_allocation_change(sender, instance, **kwargs):
    cache.invalidate_on_commit(user_ids=[instance.user_id], changed=[ALLOCATION])


@receiver([post_save, post_delete], sender=Subscription, dispatch_uid="billing.evict_on_subscription_change")
@receiver([post_save, post_delete], sender=CreditPool, dispatch_uid="billing.evict_on_pool_change")
def evict_org_views(sender, instance, **kwargs):
    cache.invalidate_on_commit(org_ids=[instance.org_id])


@receiver(post_save, sender=Plan, dispatch_uid="billing.evict_on_plan_change")
def evict_subscribers_views(sender, instance, created=False, **kwargs):
    if created:
        return  # nobody subscribes to a plan before it exists
    org_ids = Subscription.objects.filter(plan_id=instance.pk).values_list("org_id", flat=True).distinct()
    cache.invalidate_on_commit(org_ids=list(org_ids))


@receiver([post_save, post_delete], sender=PricingRule, dispatch_uid="billing.evict_pricing_rule")
def evict_pricing_rule(sender, instance, **kwargs):
    cache.invalidate_on_commit(keys=[cache.make_key("pricing_rules", pricing_rule_part(service=instance.service))])
