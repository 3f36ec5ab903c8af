import argparse
import datetime
import time

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from billing.audit import Findings, audit_steps
from billing.models import CreditAccount, CreditAllocation, CreditPool, CreditTransaction
from billing.rollup_rebuild import ledger_date_range, months_between


def parse_day(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from exc


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {number}")
    return number


class Command(BaseCommand):
    help = (
        "Audit the ledger: each balance against its user's ledger, every before/after chain, each allocation "
        "against its org usage, each pool against its allocations, and the daily rollups against a recomputation. "
        "Reads only; exits 1 and lists what differs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="first", type=parse_day, help="First rollup day (default: the oldest row).")
        parser.add_argument(
            "--to", dest="last", type=parse_day, help="Last rollup day, included (default: the newest)."
        )
        parser.add_argument("--limit", type=positive_int, default=50, help="List at most this many differences.")

    def handle(self, *args, first, last, limit, verbosity, **options):
        started = time.monotonic()
        bounds = ledger_date_range() or (None, None)
        first, last = first or bounds[0], last or bounds[1]
        if first and last and first > last:
            raise CommandError(f"--from {first} is after --to {last}")
        # An empty ledger and no invoices leave no rollup days to recompute.
        days = (first, last) if first and last else None
        steps = audit_steps(days=days)
        findings = Findings(limit=limit)
        columns = (TextColumn("auditing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True), disable=verbosity == 0) as progress:
            task = progress.add_task("ledger", total=len(steps))
            for step in steps:
                step(findings)
                progress.advance(task)

        if findings.total:
            for message in findings.listed:
                self.stdout.write(message)
            if findings.unlisted:
                self.stdout.write(f"... and {findings.unlisted:,} more (--limit {limit})")
            raise CommandError(
                f"the ledger audit found {findings.total:,} difference{'' if findings.total == 1 else 's'}"
            )
        rollups = (
            "no rollups"
            if days is None
            else f"rollups {days[0]} to {days[1]} ({len(list(months_between(*days)))} months)"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"audited {CreditAccount.objects.count():,} accounts, {CreditTransaction.objects.count():,} ledger "
                f"rows, {CreditAllocation.objects.count():,} allocations, {CreditPool.objects.count():,} pools and "
                f"{rollups} in {time.monotonic() - started:.1f} s: all consistent"
            )
        )
