"""Send due webhook deliveries: a long-running worker, or ``--once`` to drain what is due and exit."""

import signal
import threading

from django.core.management.base import BaseCommand

from webhooks.worker import Worker


class Command(BaseCommand):
    help = (
        "Deliver webhooks from the outbox. Runs until SIGTERM or SIGINT (the batch in flight finishes), "
        "or with --once until nothing is due. Several workers may run at once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Drain the due deliveries, then exit.")
        parser.add_argument("--batch-size", type=int, default=20, help="Deliveries claimed at a time (20).")
        parser.add_argument("--concurrency", type=int, default=8, help="Deliveries sent at once (8).")
        parser.add_argument(
            "--poll-interval", type=float, default=1.0, help="Seconds between looks when nothing is due (1)."
        )

    def handle(self, *args, once: bool, batch_size: int, concurrency: int, poll_interval: float, **options):
        worker = Worker(batch_size=batch_size, concurrency=concurrency, poll_interval=poll_interval)
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: worker.stop())
        attempts = worker.run(once=once)
        self.stdout.write(f"deliver_webhooks: {attempts} attempt(s), {'stopped' if worker.stopping else 'drained'}")
