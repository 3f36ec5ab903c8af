"""The personal debit inside a caller's transaction, which it joins without a savepoint of its own.

`make test` runs this file on both databases.
"""

from decimal import Decimal

import pytest
from django.db import transaction
from django.db.transaction import TransactionManagementError

from billing import alerts
from billing.errors import InsufficientCredits
from billing.models import CreditAccount, CreditTransaction
from billing.services import credits_adjust, credits_consume
from orgs.tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def funded(user, default_catalog):
    credits_adjust(actor=UserFactory(is_staff=True), user=user, amount=Decimal("1"), reason="trial")
    return user


def ledger_rows(user) -> int:
    return CreditTransaction.objects.filter(user=user).count()


def test_a_refused_debit_leaves_the_callers_transaction_usable_and_its_work_committed(funded):
    with transaction.atomic():
        credits_consume(user=funded, service="embedding", units=1, credits=Decimal("0.25"))
        with pytest.raises(InsufficientCredits):
            credits_consume(user=funded, service="embedding", units=1, credits=Decimal("5"))
        # the caller goes on in the same transaction after the refusal
        assert CreditAccount.objects.get(user=funded).balance == Decimal("0.7500")

    assert CreditAccount.objects.get(user=funded).balance == Decimal("0.7500")
    assert ledger_rows(funded) == 2  # the grant and the one debit that fitted


def test_a_failure_after_the_debit_dooms_the_callers_transaction(funded, monkeypatch):
    def alert_that_fails(**_moved):
        raise RuntimeError("the alert could not be written")

    monkeypatch.setattr(alerts, "balance_moved", alert_that_fails)
    rows_before = ledger_rows(funded)

    with transaction.atomic():
        with pytest.raises(RuntimeError):
            credits_consume(user=funded, service="embedding", units=1, credits=Decimal("0.25"))
        # with no savepoint to roll back to, the caller cannot go on as if the debit had not happened
        with pytest.raises(TransactionManagementError):
            CreditAccount.objects.get(user=funded)

    # and nothing of the half-made debit committed
    assert CreditAccount.objects.get(user=funded).balance == Decimal("1.0000")
    assert ledger_rows(funded) == rows_before


def test_a_debit_outside_any_transaction_commits_on_its_own(funded):
    result = credits_consume(user=funded, service="embedding", units=1, credits=Decimal("0.25"))

    assert result.balance == Decimal("0.7500")
    assert CreditAccount.objects.get(user=funded).balance == Decimal("0.7500")
    assert CreditTransaction.objects.get(pk=result.transaction.pk).credits_after == Decimal("0.7500")
