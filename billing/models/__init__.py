from billing.models.ledger import CreditAccount, CreditTransaction, TransactionType
from billing.models.pools import CreditAllocation, CreditPool
from billing.models.subscriptions import LIVE_SUBSCRIPTION_STATUSES, Invoice, Plan, Subscription

__all__ = [
    "LIVE_SUBSCRIPTION_STATUSES",
    "CreditAccount",
    "CreditAllocation",
    "CreditPool",
    "CreditTransaction",
    "Invoice",
    "Plan",
    "Subscription",
    "TransactionType",
]
