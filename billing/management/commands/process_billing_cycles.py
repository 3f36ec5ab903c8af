import datetime
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from billing.cycles import (
    CycleResult,
    Outcome,
    due_subscriptions,
    ended_trials,
    next_period,
    subscriptions_close_periods,
)
from billing.models import Subscription
from billing.money import format_minor_units


def parse_as_of(value: str | None) -> datetime.datetime:
    if value is None:
        return timezone.now()
    try:
        parsed = parse_datetime(value)
    except ValueError:  # well formed but impossible, e.g. February 30
        parsed = None
    if parsed is None:
        raise CommandError(f"--as-of {value!r} is not an ISO 8601 datetime such as 2025-02-01T00:00:00Z")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, datetime.UTC)


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class BatchJobCommand(BaseCommand):
    """Options, progress and the batch loop of the billing cycle jobs, which cron runs every minute.

    Subclasses define ``run`` (returns the CycleResults), ``report`` and ``dry_run``.
    """

    subject = "rows"
    item = "row"

    def run(self, as_of: datetime.datetime, *, batch_size: int, verbosity: int) -> list[CycleResult]:
        raise NotImplementedError

    def report(self, results: list[CycleResult]) -> None:
        raise NotImplementedError

    def dry_run(self, as_of: datetime.datetime) -> None:
        raise NotImplementedError

    def add_arguments(self, parser):
        parser.add_argument("--as-of", help="ISO 8601 datetime to process up to (default: now; naive means UTC).")
        parser.add_argument("--dry-run", action="store_true", help="List what would happen and write nothing.")
        parser.add_argument(
            "--batch-size", type=positive_int, default=500, help="Rows locked per transaction (default 500)."
        )

    def handle(self, *args, as_of: str | None, dry_run: bool, batch_size: int, verbosity: int, **options):
        moment = parse_as_of(as_of)
        if dry_run:
            self.dry_run(moment)
            return
        results = self.run(moment, batch_size=batch_size, verbosity=verbosity)
        self.report(results)
        for result in results:
            if result.note:
                self.stderr.write(f"{self.item} {result.subject_id}: {result.outcome}: {result.note}")
        failed = sum(result.outcome == Outcome.FAILED for result in results)
        if failed:
            raise CommandError(f"{failed} {self.subject} failed; the log has the tracebacks.")

    def drain(
        self, batches: Sequence[Callable[..., list[CycleResult]]], *, total: int, verbosity: int
    ) -> list[CycleResult]:
        """Run each batch function until nothing due is left unlocked.

        A row that failed or was skipped without moving on stays due; it is
        left out of the rest of this run instead of being retried forever.
        """
        results: list[CycleResult] = []
        stuck: set[int] = set()
        with Progress(
            TextColumn(self.subject),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=verbosity == 0,
        ) as progress:
            task = progress.add_task(self.subject, total=total)
            for batch in batches:
                while batch_results := batch(exclude_ids=stuck):
                    results.extend(batch_results)
                    stuck.update(r.subject_id for r in batch_results if r.outcome in (Outcome.FAILED, Outcome.SKIPPED))
                    # A subscription far behind renews once per missed period.
                    progress.update(task, advance=len(batch_results), total=max(total, len(results)))
        return results


class Command(BatchJobCommand):
    help = (
        "Renew, convert or cancel subscriptions whose period has ended: invoice and charge each new period, "
        "then refresh the org's credit pool. Safe to run from cron every minute, and twice at once."
    )
    subject = "subscriptions"
    item = "subscription"

    def run(self, as_of, *, batch_size, verbosity):
        due = [ended_trials(as_of=as_of), due_subscriptions(as_of=as_of)]
        # Trials first: a converted trial that is still behind is then renewed with the active ones.
        batches = [partial(subscriptions_close_periods, due=queryset, limit=batch_size) for queryset in due]
        return self.drain(batches, total=sum(queryset.count() for queryset in due), verbosity=verbosity)

    def report(self, results):
        counts = Counter(result.outcome for result in results)
        refreshed = sum(result.pool_refreshed for result in results)
        skipped = sum(bool(result.note) and result.outcome != Outcome.FAILED for result in results)
        self.stdout.write(
            f"renewed {counts[Outcome.RENEWED]}, canceled {counts[Outcome.CANCELED]}, "
            f"trials converted {counts[Outcome.TRIAL_CONVERTED]}, past_due {counts[Outcome.PAST_DUE]}, "
            f"pools refreshed {refreshed}, skipped {skipped}, failed {counts[Outcome.FAILED]}"
        )

    def dry_run(self, as_of):
        actions = 0
        for queryset in (ended_trials(as_of=as_of), due_subscriptions(as_of=as_of)):
            for subscription in queryset.select_related("plan"):
                for line in self._planned(subscription, as_of):
                    self.stdout.write(f"subscription {subscription.pk} (org {subscription.org_id}): {line}")
                    actions += 1
        self.stdout.write(f"dry run: {actions} actions as of {as_of.isoformat()}; nothing was written")

    @staticmethod
    def _planned(subscription: Subscription, as_of: datetime.datetime):
        """What a run would do, assuming every charge goes through."""
        if subscription.cancel_at_period_end:
            yield f"cancel at period end {subscription.current_period_end:%Y-%m-%d}"
            return
        plan = subscription.plan
        verb = "convert trial" if subscription.status == Subscription.Status.TRIALING else "renew"
        start, end = subscription.current_period_start, subscription.current_period_end
        while end <= as_of:
            start, end = next_period(start, end, plan.interval)
            yield (
                f"{verb} for {start:%Y-%m-%d} to {end:%Y-%m-%d}, invoice "
                f"{format_minor_units(plan.price_minor, plan.currency)}, pool +{plan.included_credits} credits"
            )
            verb = "renew"
