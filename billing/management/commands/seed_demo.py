import argparse
import random
import time
from pathlib import Path

from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from billing.demo.catalog import load_catalog
from billing.demo.keys import write_keys_csv
from billing.demo.load import delete_demo_data, refresh_planner_statistics
from billing.demo.population import plan_population
from billing.demo.seed import ADMIN_PASSWORD, ADMIN_USERNAME, DemoSeeder
from orgs.models import Organization, User


def non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {number}")
    return number


class Command(BaseCommand):
    help = (
        "Load a deterministic demo data set: plans, users, organizations with subscriptions, credit pools and "
        "allocations, a year of credit ledger and invoices. About 70% of users are plain end users, the rest org "
        f"owners, admins and members, plus a few staff. Also creates the superuser '{ADMIN_USERNAME}' with password "
        f"'{ADMIN_PASSWORD}' (a demo login: never load demo data into a real deployment). "
        "The same --seed always gives the same data."
    )

    def add_arguments(self, parser):
        parser.add_argument("--users", type=non_negative_int, default=200, help="Users, admin and staff included.")
        parser.add_argument("--orgs", type=non_negative_int, default=10, help="Organizations.")
        parser.add_argument(
            "--transactions", type=non_negative_int, default=5000, help="Ledger rows, personal and org, roughly."
        )
        parser.add_argument("--seed", type=int, default=42, help="Random seed; the same seed gives the same data.")
        parser.add_argument(
            "--reset",
            action="store_true",
            help="First delete users, orgs, ledger, invoices and keys; plans, packages and pricing rules stay.",
        )
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing, successfully, when any user exists already."
        )
        parser.add_argument(
            "--keys-out",
            type=Path,
            help="Issue API keys for a sample of users and write them to this CSV "
            "(username,role,org_id,api_key,user_id).",
        )

    def handle(self, *args, **options):
        if options["if_empty"] and User.objects.exists():
            self.stdout.write("Users exist already; demo data not loaded (--if-empty).")
            return
        if not options["reset"] and (User.objects.exists() or Organization.objects.exists()):
            raise CommandError("The database already holds users or organizations. Pass --reset to replace them.")

        started = time.monotonic()
        now = timezone.now().replace(microsecond=0)
        rng = random.Random(options["seed"])  # noqa: S311 - reproducible demo data, not secrets
        try:
            catalog = load_catalog()
            population = plan_population(
                rng=rng, users=options["users"], orgs=options["orgs"], transactions=options["transactions"], now=now
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        with self._progress(options["verbosity"]) as progress, transaction.atomic():
            if options["reset"]:
                delete_demo_data()
            seeder = DemoSeeder(population=population, catalog=catalog, rng=rng, now=now, progress=progress)
            seeder.run(with_keys=options["keys_out"] is not None)
            if options["keys_out"] is not None:
                # Inside the transaction: keys nobody can read are rolled back with the rest.
                write_keys_csv(options["keys_out"], seeder.issued_keys)
        # Bulk loads send no signals, so nothing evicted what they replaced.
        self._clear_cache()
        refresh_planner_statistics()

        if options["verbosity"] > 0:
            self._report(seeder.counts, time.monotonic() - started, options["keys_out"])

    def _clear_cache(self) -> None:
        """Cached balances and API-key lookups may describe replaced rows, and ids get reused."""
        try:
            cache.clear()
        except Exception as exc:  # a cache outage must not fail a finished load
            self.stderr.write(f"Could not clear the cache ({exc}); stale entries expire with their TTLs.")

    def _progress(self, verbosity: int) -> Progress:
        return Progress(
            TextColumn("{task.description:<20}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=verbosity == 0,
        )

    def _report(self, counts, elapsed: float, keys_out: Path | None) -> None:
        width = max(len(name) for name in counts)
        for name, count in sorted(counts.items()):
            self.stdout.write(f"  {name:<{width}}  {count:>10,}")
        if keys_out is not None:
            self.stdout.write(f"API keys written to {keys_out}")
        self.stdout.write(
            self.style.SUCCESS(f"Demo data loaded in {elapsed:.1f}s. Log in to the admin as {ADMIN_USERNAME}.")
        )
