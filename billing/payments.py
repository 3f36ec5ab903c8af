"""The payment gateway interface. The default settles at once (demo and tests);
a real processor plugs in behind ``settings.PAYMENT_GATEWAY``.
"""

import uuid
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class Charge:
    reference: str


class PaymentGateway(Protocol):
    def charge(self, *, amount_minor: int, currency: str, description: str, idempotency_key: str) -> Charge:
        """Take the money or raise billing.errors.PaymentDeclined.

        ``idempotency_key`` is stable per invoice, so a retried charge never
        takes the money twice.
        """


class InstantSettlementGateway:
    def charge(self, *, amount_minor: int, currency: str, description: str, idempotency_key: str) -> Charge:
        return Charge(reference=f"instant_{uuid.uuid4().hex}")


def get_gateway() -> PaymentGateway:
    return import_string(settings.PAYMENT_GATEWAY)()
