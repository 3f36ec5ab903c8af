from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from ops_center.models import IdempotencyRecord


class Command(BaseCommand):
    help = "Delete Idempotency-Key records older than IDEMPOTENCY_KEY_RETENTION_HOURS (at least 24). Safe in cron."

    def handle(self, *args, **options):
        hours = max(24, settings.IDEMPOTENCY_KEY_RETENTION_HOURS)
        cutoff = timezone.now() - timedelta(hours=hours)
        deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
        self.stdout.write(f"deleted {deleted} idempotency records older than {hours} h")
