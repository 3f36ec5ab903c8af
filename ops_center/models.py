"""Shared plumbing tables."""

from django.db import models


class IdempotencyRecord(models.Model):
    """The first response to a POST carrying an ``Idempotency-Key``, kept for replays.

    ``user_id`` is a plain column rather than a foreign key so this base app
    does not depend on the apps above it.
    """

    user_id = models.BigIntegerField()
    key = models.CharField(max_length=128)
    endpoint = models.CharField(max_length=200)
    request_fingerprint = models.CharField(max_length=64)
    # Both NULL: the write recorded its key inside its own statement, before its answer existed
    # (a one-statement debit), and a replay renders the answer from the rows that write left.
    status_code = models.PositiveSmallIntegerField(null=True)
    # The rendered JSON text, not jsonb: a replay must repeat the first body byte for byte.
    response_body = models.TextField(null=True)  # noqa: DJ001 - NULL means "rendered from the write's rows"
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "key"], name="uniq_idempotency_user_key"),
            models.CheckConstraint(
                condition=models.Q(status_code__isnull=True, response_body__isnull=True)
                | models.Q(status_code__isnull=False, response_body__isnull=False),
                name="idempotency_answer_whole_or_rendered_later",
            ),
        ]
        indexes = [
            # purge_idempotency_keys deletes by age.
            models.Index(fields=["created_at"], name="idx_idempotency_created"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


class PendingEviction(models.Model):
    """A cache key whose eviction must still reach Redis.

    Written when an eviction fails (a Redis error or timeout, or an open
    circuit breaker), and in the same transaction as a revocation; every
    gunicorn worker replays the rows to Redis about twice a second and deletes
    them once Redis has answered (ops_center/cache_backlog.py).
    Holds the cache's own key (``v1:credit_balance:user_42:balance``), without
    the deployment prefix: the table belongs to one deployment already.
    """

    key = models.CharField(max_length=250)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key
