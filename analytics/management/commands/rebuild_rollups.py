import datetime

from django.core.management.base import BaseCommand, CommandError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from billing.rollup_rebuild import ROLLUPS, ledger_date_range, months_between, rebuild
from ops_center import cache


def parse_day(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from exc


class Command(BaseCommand):
    help = (
        "Recompute the daily rollups (usage, org usage, user activity, credit flow, revenue) from the "
        "ledger and the invoices, month by month. Use after a repair or a bulk load; the numbers equal "
        "what the live upkeep writes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="first", type=parse_day, help="First day (default: the oldest row).")
        parser.add_argument("--to", dest="last", type=parse_day, help="Last day, included (default: the newest).")
        parser.add_argument("--only", choices=ROLLUPS, action="append", help="Rebuild only this rollup (repeatable).")

    def handle(self, *args, first, last, only, verbosity, **options):
        bounds = ledger_date_range()
        if first is None or last is None:
            if bounds is None:
                self.stdout.write("The ledger and the invoices are empty: nothing to rebuild.")
                return
            first, last = first or bounds[0], last or bounds[1]
        if first > last:
            raise CommandError(f"--from {first} is after --to {last}")
        tables = tuple(only or ROLLUPS)
        months = list(months_between(first, last))
        columns = (TextColumn("rebuilding {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, disable=verbosity == 0) as progress:
            task = progress.add_task(f"{first} to {last}", total=len(months))
            rebuild(first, last, tables=tables, on_month=lambda _: progress.advance(task))
        # Rebuilt rollups may differ from what cached reports and summaries were built on.
        for namespace in ("analytics", "credit_balance", "org_data"):
            cache.delete_pattern(f"{namespace}:*")
        self.stdout.write(f"rebuilt {', '.join(tables)} for {len(months)} months ({first} to {last})")
