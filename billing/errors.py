"""Billing's domain errors, each with its HTTP status and stable error code."""

from rest_framework import status

from ops_center.api.exceptions import ApiError, PaymentRequired


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


class OrgNotFound(ApiError):
    """Also raised for orgs the caller is not in, so their existence is not revealed."""

    status_code = status.HTTP_404_NOT_FOUND
    default_code = "org_not_found"
    default_detail = "No such organization."


class InvalidCost(ApiError):
    default_code = "invalid_cost"
    default_detail = "Usage must cost more than zero credits and no more than the largest balance."
