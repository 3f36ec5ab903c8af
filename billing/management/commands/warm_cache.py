import functools

from django.core.management.base import BaseCommand
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from billing import selectors
from ops_center import cache


class Command(BaseCommand):
    help = (
        "Fill the hot cache namespaces: balance, 30-day usage summary and first transactions page "
        "of the most active users, and the subscription, pool and member usage of every org with a "
        "live subscription. Safe to run at any time."
    )

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=1000, help="How many of the most active users (default 1000).")
        parser.add_argument("--days", type=int, default=7, help="Activity window for choosing users (default 7).")

    def handle(self, *args, users: int, days: int, verbosity: int, **options):
        user_ids = selectors.most_active_user_ids(limit=users, days=days)
        org_ids = selectors.live_subscription_org_ids()
        warmers = [functools.partial(selectors.warm_user, user_id=user_id) for user_id in user_ids]
        warmers += [functools.partial(selectors.warm_org, org_id=org_id) for org_id in org_ids]
        with Progress(
            TextColumn("warming"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), disable=verbosity == 0
        ) as progress:
            task = progress.add_task("warm", total=len(warmers))
            for warm in warmers:
                warm()
                progress.advance(task)
        if cache.breaker.is_open:
            self.stderr.write("The cache is unreachable; nothing was warmed. Is Redis running (REDIS_URL)?")
            return
        self.stdout.write(f"warmed {len(user_ids)} users and {len(org_ids)} orgs with a live subscription")
