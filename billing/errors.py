"""Billing's refusals, each with its stable error code (the API layer picks the status)."""

from ops_center.errors import ApplicationError, Conflict, NotFound, PaymentRequired
from orgs.errors import OrgNotFound

__all__ = ["OrgNotFound"]


class InsufficientCredits(PaymentRequired):
    default_code = "insufficient_credits"
    default_message = "Not enough credits for this usage."


class PaymentDeclined(PaymentRequired):
    default_code = "payment_declined"
    default_message = "The payment was declined."


class UnknownService(ApplicationError):
    default_code = "unknown_service"
    default_message = "No active pricing rule exists for this service."


class UnknownPackage(ApplicationError):
    default_code = "unknown_package"
    default_message = "No active credit package has this code."


class InvalidCost(ApplicationError):
    default_code = "invalid_cost"
    default_message = "Usage must cost more than zero credits and no more than the largest balance."


class NotAMember(ApplicationError):
    default_code = "not_a_member"
    default_message = "That user is not a member of this organization."


class PoolNotFound(NotFound):
    default_code = "pool_not_found"
    default_message = "This organization has no credit pool."


class SubscriptionNotFound(NotFound):
    default_code = "subscription_not_found"
    default_message = "This organization has no current subscription."


class AllocationBelowUsage(Conflict):
    default_code = "allocation_below_usage"
    default_message = "An allocation cannot be lowered below what the member has already used."


class PoolExhausted(Conflict):
    default_code = "pool_exhausted"
    default_message = "The pool does not have that many unallocated credits."


class InvalidAdjustment(ApplicationError):
    default_code = "invalid_adjustment"
    default_message = "An adjustment must change the balance and give a reason."
