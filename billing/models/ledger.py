"""The credit ledger: pre-computed balances and the append-only transaction log."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Round
from django.utils import timezone

from billing.money import CREDIT_DECIMAL_PLACES, credit_field
from ops_center.db import LongNameIndex


class CreditAccount(models.Model):
    """A user's personal balance, kept in step with the ledger in one transaction.

    Balances are never summed on read; a debit is one conditional UPDATE
    (``balance = balance - x WHERE balance >= x``) and the constraint below is
    the last line of defence against overspending.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credit_account")
    balance = credit_field()
    # credits.balance_low fires when a debit takes the balance from above this to at or below it;
    # NULL (the default) turns it off. The debit reads it in its own UPDATE ... RETURNING, so
    # an account without one pays no extra query (billing/alerts.py).
    low_balance_threshold = credit_field(default=None, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="credit_account_balance_non_negative"),
            models.CheckConstraint(
                condition=Q(low_balance_threshold__isnull=True) | Q(low_balance_threshold__gte=0),
                name="credit_account_low_threshold_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"account of user {self.user_id}: {self.balance}"


class TransactionType(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    USAGE = "usage", "Usage"
    ALLOCATION = "allocation", "Allocation"
    REFUND = "refund", "Refund"
    ADJUSTMENT = "adjustment", "Adjustment"
    REFRESH = "refresh", "Refresh"
    EXPIRY = "expiry", "Expiry"


class CreditTransaction(models.Model):
    """One append-only ledger row. Corrections are new rows, never edits.

    ``credits_before``/``credits_after`` always satisfy after = before + amount
    and chain per balance they describe:
    * rows without an org: the user's personal balance;
    * usage and allocation rows with an org: the user's allocation in that org;
    * refresh and expiry rows with an org: the org pool's total_credits (the
      row's user is the org's billing contact).
    """

    Type = TransactionType

    id = models.BigAutoField(primary_key=True)
    # No single-column FK indexes: the composite indexes below lead with user_id
    # and org_id and serve those lookups; another index would only slow inserts.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="credit_transactions", db_index=False
    )
    org = models.ForeignKey(
        "orgs.Organization",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="credit_transactions",
        db_index=False,
    )
    transaction_type = models.CharField(max_length=16, choices=TransactionType.choices)
    amount = credit_field()
    credits_before = credit_field()
    credits_after = credit_field()
    # Bounded so the row fits in the covering index's INCLUDE list.
    description = models.CharField(max_length=255, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    # NULL, not "", for rows without a key: the partial unique constraint skips NULLs.
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "credit_transactions"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                # Rounded to the credit precision because the SQLite quick start
                # stores decimals as floats; on PostgreSQL numeric it is exact.
                condition=Q(credits_after=Round(F("credits_before") + F("amount"), CREDIT_DECIMAL_PLACES)),
                name="credit_txn_after_is_before_plus_amount",
            ),
            models.CheckConstraint(
                condition=Q(credits_before__gte=0) & Q(credits_after__gte=0), name="credit_txn_credits_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(transaction_type__in=TransactionType.values), name="credit_txn_type_known"
            ),
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="uniq_credit_txn_user_idempotency_key",
            ),
        ]
        indexes = [
            # Org aggregation: an org's flows by type over a date range,
            # answered from the index alone thanks to INCLUDE.
            LongNameIndex(
                fields=["org", "transaction_type", "-created_at"],
                include=["amount", "credits_before", "credits_after"],
                name="idx_credit_transactions_org_summary",
            ),
            # The ledger across all users, newest first (the admin changelist,
            # rollup rebuilds by date range). Without it the admin sorts the
            # whole table on every page view.
            models.Index(fields=["-created_at", "-id"], name="idx_credit_txn_created"),
            # Transaction history pagination: GET /credits/transactions, a user's
            # rows newest first, index-only for the listed columns.
            LongNameIndex(
                fields=["user", "-created_at"],
                include=["transaction_type", "amount", "description"],
                name="idx_credit_transactions_history",
            ),
            # No partial index (user_id, created_at DESC) WHERE amount > 0 for a
            # user's latest credits in: no query reads it, and every ledger insert
            # with a positive amount would have to maintain it.
        ]

    def __str__(self) -> str:
        return f"{self.transaction_type} {self.amount} for user {self.user_id}"
