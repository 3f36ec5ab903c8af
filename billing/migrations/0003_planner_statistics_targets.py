"""Raise the planner's statistics targets on the columns the hot queries filter on.

With a skewed ledger (a few heavy users, many light ones) the default sample of
100 misjudges per-user row counts; 1000 gives the planner enough most-common
values to pick the history index for light users and a bitmap scan for heavy
ones.
PostgreSQL only: SQLite has no such knob, so there the migration does nothing.
"""

from django.db import migrations

STATISTICS_TARGETS = {
    "credit_transactions": {"user_id": 1000, "org_id": 1000, "transaction_type": 500, "created_at": 500},
    "subscriptions": {"org_id": 500, "status": 500, "current_period_end": 500},
    "credit_pools": {"org_id": 500, "next_refresh_date": 500},
}


def set_targets(target_for):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        quote = schema_editor.quote_name
        for table, columns in STATISTICS_TARGETS.items():
            for column, target in columns.items():
                schema_editor.execute(
                    f"ALTER TABLE {quote(table)} ALTER COLUMN {quote(column)} SET STATISTICS {int(target_for(target))}"
                )

    return apply


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_initial")]

    operations = [
        # -1 restores the server default (default_statistics_target).
        migrations.RunPython(set_targets(lambda target: target), set_targets(lambda target: -1)),
    ]
