"""Staff grants and adjustments: each is a ledger row; nothing is edited in place."""

from decimal import Decimal

import pytest

from billing.errors import InsufficientCredits, InvalidAdjustment
from billing.models import CreditAccount, CreditTransaction
from billing.services import credits_adjust, credits_purchase
from orgs.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    return UserFactory(is_staff=True)


def test_a_grant_adds_credits_with_who_and_why(staff, user):
    result = credits_adjust(actor=staff, user=user, amount=Decimal("25"), reason="Outage credit")

    assert result.balance == Decimal("25")
    row = CreditTransaction.objects.get(user=user)
    assert (row.transaction_type, row.amount, row.credits_before, row.credits_after) == (
        "adjustment",
        Decimal("25"),
        Decimal("0"),
        Decimal("25"),
    )
    assert row.metadata == {"actor_id": staff.pk, "actor": staff.username, "reason": "Outage credit"}
    assert row.description == "Grant: Outage credit"


def test_a_negative_adjustment_appends_a_row_and_keeps_the_first(staff, user):
    credits_purchase(user=user, credits=Decimal("10"))

    credits_adjust(actor=staff, user=user, amount=Decimal("-4"), reason="Duplicate purchase")

    assert list(CreditTransaction.objects.order_by("id").values_list("amount", "credits_after")) == [
        (Decimal("10"), Decimal("10")),
        (Decimal("-4"), Decimal("6")),
    ]
    assert CreditAccount.objects.get(user=user).balance == Decimal("6")


def test_an_adjustment_can_never_take_a_balance_below_zero(staff, user):
    credits_purchase(user=user, credits=Decimal("3"))

    with pytest.raises(InsufficientCredits):
        credits_adjust(actor=staff, user=user, amount=Decimal("-3.0001"), reason="Too much")

    assert CreditAccount.objects.get(user=user).balance == Decimal("3")
    assert CreditTransaction.objects.filter(user=user).count() == 1


@pytest.mark.parametrize(
    ("amount", "reason", "code"),
    [(Decimal("0"), "nothing", "adjustment_is_zero"), (Decimal("5"), "   ", "adjustment_reason_missing")],
)
def test_an_adjustment_needs_an_amount_and_a_reason(staff, user, amount, reason, code):
    with pytest.raises(InvalidAdjustment) as refused:
        credits_adjust(actor=staff, user=user, amount=amount, reason=reason)
    assert refused.value.code == code
    assert not CreditTransaction.objects.exists()
