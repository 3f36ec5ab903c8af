from collections import Counter
from functools import partial

from billing.cycles import Outcome, due_pools, live_subscription, pool_period, pools_refresh_due, with_live_subscription
from billing.management.commands.process_billing_cycles import BatchJobCommand


class Command(BatchJobCommand):
    help = (
        "Refresh org credit pools whose next_refresh_date has come and whose live subscription has reached "
        "that period: add the plan's included credits once per period. Safe to run from cron every minute, "
        "and twice at once."
    )
    subject = "pools"
    item = "pool"

    def run(self, as_of, *, batch_size, verbosity):
        batch = partial(pools_refresh_due, as_of=as_of, limit=batch_size)
        return self.drain([batch], total=due_pools(as_of=as_of).count(), verbosity=verbosity)

    def report(self, results):
        counts = Counter(result.outcome for result in results)
        self.stdout.write(
            f"pools refreshed {counts[Outcome.REFRESHED]}, skipped {counts[Outcome.SKIPPED]}, "
            f"failed {counts[Outcome.FAILED]}"
        )

    def dry_run(self, as_of):
        actions = 0
        for pool in with_live_subscription(due_pools(as_of=as_of)):
            subscription = live_subscription(pool)
            start = pool.next_refresh_date
            if subscription is None or start is None:
                continue  # billing moved the subscription on since the due query ran: a run skips it too
            # The same steps a run takes: one period at a time, never past the paid-up period.
            while start <= as_of and start < subscription.current_period_end:
                start, end = pool_period(start=start, subscription=subscription)
                self.stdout.write(
                    f"pool {pool.pk} (org {pool.org_id}): refresh +{subscription.plan.included_credits} credits "
                    f"for {start:%Y-%m-%d} to {end:%Y-%m-%d}"
                )
                actions += 1
                start = end
        self.stdout.write(f"dry run: {actions} actions as of {as_of.isoformat()}; nothing was written")
