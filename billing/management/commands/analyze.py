import time

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import connection


def billing_tables() -> list[str]:
    """Every table of the billing app: the ledger, subscriptions, pools, usage, invoices, rollups."""
    models = apps.get_app_config("billing").get_models()
    return sorted(model._meta.db_table for model in models if model._meta.managed and not model._meta.proxy)


class Command(BaseCommand):
    help = (
        "VACUUM (ANALYZE) the billing tables, routine upkeep for the hot queries: reclaim dead rows and "
        "refresh the planner's statistics. PostgreSQL only; runs outside any transaction."
    )

    def add_arguments(self, parser):
        parser.add_argument("tables", nargs="*", help="Only these billing tables (default: all of them).")

    def handle(self, *args, **options):
        if connection.vendor != "postgresql":
            raise CommandError(f"analyze runs VACUUM (ANALYZE) on PostgreSQL; this database is {connection.vendor}.")
        if connection.in_atomic_block:
            raise CommandError("VACUUM cannot run inside a transaction block; call this command outside one.")
        known = billing_tables()
        unknown = sorted(set(options["tables"]) - set(known))
        if unknown:
            raise CommandError(f"not billing tables: {', '.join(unknown)}. Known: {', '.join(known)}")
        tables = options["tables"] or known

        started = time.monotonic()
        with connection.cursor() as cursor:
            for table in tables:
                table_started = time.monotonic()
                # The name comes from the model registry, checked above, and is quoted.
                cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(table)}")
                cursor.execute(
                    "SELECT n_live_tup, n_dead_tup FROM pg_stat_user_tables "
                    "WHERE relname = %s AND schemaname = current_schema()",
                    [table],
                )
                live, dead = cursor.fetchone() or (0, 0)
                self.stdout.write(
                    f"VACUUM (ANALYZE) {table:<28} {live:>12,} live rows  {dead:>8,} dead  "
                    f"{time.monotonic() - table_started:6.2f}s"
                )
        elapsed = time.monotonic() - started
        self.stdout.write(self.style.SUCCESS(f"{len(tables)} tables vacuumed and analyzed in {elapsed:.2f}s."))
