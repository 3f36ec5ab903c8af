"""The errors services and selectors raise when they refuse: free of HTTP and of DRF.

Each has a stable ``code``, a human ``message``, ``details`` for the client and a
``refusal``, the kind of no it is. Only the API layer knows HTTP:
``ops_center.api.errors`` turns each refusal into its status and the one error
shape, and the admin shows the message.
"""

import enum
from typing import Any, ClassVar


class Refusal(enum.Enum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    PAYMENT_REQUIRED = "payment_required"


class ApplicationError(Exception):
    refusal: ClassVar[Refusal] = Refusal.INVALID
    default_code: ClassVar[str] = "invalid_request"
    default_message: ClassVar[str] = "The request could not be carried out."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None, code: str | None = None):
        self.message = message or self.default_message
        self.code = code or self.default_code
        self.details = details or {}
        super().__init__(self.message)


class NotFound(ApplicationError):
    refusal = Refusal.NOT_FOUND
    default_code = "not_found"
    default_message = "No such resource."


class Conflict(ApplicationError):
    refusal = Refusal.CONFLICT
    default_code = "conflict"
    default_message = "The request conflicts with the current state."


class PaymentRequired(ApplicationError):
    refusal = Refusal.PAYMENT_REQUIRED
    default_code = "payment_required"
    default_message = "Payment required."
