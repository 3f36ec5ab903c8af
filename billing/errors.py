"""Billing's domain errors, each with its HTTP status and stable error code."""

from rest_framework import status

from ops_center.api.exceptions import ApiError, Conflict, PaymentRequired
from orgs.errors import OrgNotFound

__all__ = ["OrgNotFound"]


class InsufficientCredits(PaymentRequired):
    default_code = "insufficient_credits"
    default_detail = "Not enough credits for this usage."


class PaymentDeclined(PaymentRequired):
    default_code = "payment_declined"
    default_detail = "The payment was declined."


class UnknownService(ApiError):
    default_code = "unknown_service"
    default_detail = "No active pricing rule exists for this service."


class UnknownPackage(ApiError):
    default_code = "unknown_package"
    default_detail = "No active credit package has this code."


class InvalidCost(ApiError):
    default_code = "invalid_cost"
    default_detail = "Usage must cost more than zero credits and no more than the largest balance."


class NotAMember(ApiError):
    default_code = "not_a_member"
    default_detail = "That user is not a member of this organization."


class PoolNotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "pool_not_found"
    default_detail = "This organization has no credit pool."


class SubscriptionNotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "subscription_not_found"
    default_detail = "This organization has no current subscription."


class AllocationBelowUsage(Conflict):
    default_code = "allocation_below_usage"
    default_detail = "An allocation cannot be lowered below what the member has already used."


class PoolExhausted(Conflict):
    default_code = "pool_exhausted"
    default_detail = "The pool does not have that many unallocated credits."
