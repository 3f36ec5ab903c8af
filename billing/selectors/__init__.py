"""Reads for billing: the caller's credits, and org billing."""

from billing.selectors.credits import (
    DEFAULT_SUMMARY_DAYS,
    allocation_remaining,
    balance_with_allocations,
    custom_credits_price,
    most_active_user_ids,
    personal_balance_amount,
    pricing_rule,
    pricing_rule_key,
    pricing_rule_part,
    transactions_page,
    usage_summary,
    warm_user,
)
from billing.selectors.orgs import (
    days_left,
    live_subscription_org_ids,
    member_allocation,
    members_usage_page,
    org_credit_pool,
    org_subscription,
    subscriptions_page,
    warm_org,
)

__all__ = [
    "DEFAULT_SUMMARY_DAYS",
    "allocation_remaining",
    "balance_with_allocations",
    "custom_credits_price",
    "days_left",
    "live_subscription_org_ids",
    "member_allocation",
    "members_usage_page",
    "most_active_user_ids",
    "org_credit_pool",
    "org_subscription",
    "personal_balance_amount",
    "pricing_rule",
    "pricing_rule_key",
    "pricing_rule_part",
    "subscriptions_page",
    "transactions_page",
    "usage_summary",
    "warm_org",
    "warm_user",
]
