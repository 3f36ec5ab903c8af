from billing.models.catalog import CreditPackage, PricingRule
from billing.models.ledger import CreditAccount, CreditTransaction, TransactionType
from billing.models.pools import CreditAllocation, CreditPool
from billing.models.rollups import CreditFlowDaily, OrgUsageDaily, RevenueDaily, UserActivity
from billing.models.subscriptions import LIVE_SUBSCRIPTION_STATUSES, Invoice, Plan, Subscription
from billing.models.usage import UsageDaily

__all__ = [
    "LIVE_SUBSCRIPTION_STATUSES",
    "CreditAccount",
    "CreditAllocation",
    "CreditFlowDaily",
    "CreditPackage",
    "CreditPool",
    "CreditTransaction",
    "Invoice",
    "OrgUsageDaily",
    "Plan",
    "PricingRule",
    "RevenueDaily",
    "Subscription",
    "TransactionType",
    "UsageDaily",
    "UserActivity",
]
