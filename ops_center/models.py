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
    status_code = models.PositiveSmallIntegerField(null=True)
    # The rendered JSON text, not jsonb: a replay must repeat the first body byte for byte.
    response_body = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "key"], name="uniq_idempotency_user_key"),
        ]
        indexes = [
            # purge_idempotency_keys deletes by age.
            models.Index(fields=["created_at"], name="idx_idempotency_created"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"
