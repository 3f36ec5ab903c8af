"""Fast bulk writes: COPY on PostgreSQL, batched INSERTs elsewhere.

Rows are written as column tuples rather than model instances: building two
million instances would cost more than loading them, and ``bulk_create`` would
overwrite the demo's historical ``created_at`` values (``auto_now_add`` always
wins there).
"""

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

from django.core.management.color import no_style
from django.db import connection, models

from billing.models import (
    CreditAccount,
    CreditAllocation,
    CreditFlowDaily,
    CreditPool,
    CreditTransaction,
    Invoice,
    OrgUsageDaily,
    Plan,
    RevenueDaily,
    Subscription,
    UsageDaily,
    UserActivity,
)
from ops_center.models import IdempotencyRecord
from orgs.models import ApiKey, Membership, Organization, User

INSERT_BATCH_SIZE = 5_000
# What --reset deletes, children before parents so no PROTECT foreign key blocks
# a delete. The catalog (plans, packages, pricing rules) stays: the seeder
# upserts plans, and packages and pricing rules come from migrations.
DEMO_DATA_MODELS = (
    ApiKey,
    IdempotencyRecord,
    UsageDaily,
    OrgUsageDaily,
    UserActivity,
    CreditFlowDaily,
    RevenueDaily,
    CreditTransaction,
    Invoice,
    CreditAllocation,
    CreditPool,
    Subscription,
    CreditAccount,
    Membership,
    Organization,
    User,
)


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


@contextmanager
def table_writer(model: type[models.Model], columns: Sequence[str]) -> Iterator[Callable[[Sequence], None]]:
    """Yield ``write(row)`` for tuples of Python values in ``columns`` order.

    The rows reach the table when the block exits; on PostgreSQL they stream
    through one COPY while the caller keeps generating.
    """
    fields: list[models.Field] = []
    quoted_columns: list[str] = []
    for name in columns:
        field = model._meta.get_field(name)
        if not isinstance(field, models.Field) or field.column is None:
            raise ValueError(f"{model.__name__}.{name} is not a column of its table")
        fields.append(field)
        quoted_columns.append(connection.ops.quote_name(field.column))
    table = connection.ops.quote_name(model._meta.db_table)
    column_list = ", ".join(quoted_columns)
    if is_postgresql():
        with _copy_writer(table, column_list, fields) as write:
            yield write
    else:
        with _insert_writer(table, column_list, fields) as write:
            yield write


@contextmanager
def _copy_writer(table: str, column_list: str, fields: list[models.Field]):
    json_positions = [i for i, field in enumerate(fields) if isinstance(field, models.JSONField)]
    connection.ensure_connection()
    # Django's cursor wrapper has no copy(); the raw psycopg connection shares its transaction.
    with connection.connection.cursor() as cursor, cursor.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy:
        if not json_positions:
            yield copy.write_row
            return

        def write(row: Sequence) -> None:
            row = list(row)
            for i in json_positions:
                row[i] = json.dumps(row[i])
            copy.write_row(row)

        yield write


@contextmanager
def _insert_writer(table: str, column_list: str, fields: list[models.Field]):
    prepare = [partial(field.get_db_prep_save, connection=connection) for field in fields]
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {table} ({column_list}) VALUES ({placeholders})"  # noqa: S608 - names come from model meta
    batch: list[list[Any]] = []

    def flush() -> None:
        if batch:
            with connection.cursor() as cursor:
                cursor.executemany(sql, batch)
            batch.clear()

    def write(row: Sequence) -> None:
        batch.append([prep(value) for prep, value in zip(prepare, row, strict=True)])
        if len(batch) >= INSERT_BATCH_SIZE:
            flush()

    yield write
    flush()


# Bulk-load advice from the PostgreSQL manual ("Populating a Database"):
# building an index from all rows at once and checking a foreign key with one
# join cost far less than maintaining both row by row.
DEFERRED_OBJECTS_SQL = """
    SELECT format('ALTER TABLE %%s DROP CONSTRAINT %%I', conrelid::regclass, conname),
           format('ALTER TABLE %%s ADD CONSTRAINT %%I %%s', conrelid::regclass, conname, pg_get_constraintdef(oid))
    FROM pg_constraint
    WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])
    UNION ALL
    SELECT format('DROP INDEX %%s', indexrelid::regclass), pg_get_indexdef(indexrelid)
    FROM pg_index AS i
    WHERE indrelid = ANY(%s::regclass[]) AND NOT indisprimary
      AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
"""
INDEX_BUILD_MEMORY = "256MB"


@contextmanager
def indexes_and_foreign_keys_deferred(*bulk_models: type[models.Model]) -> Iterator[None]:
    """Drop the tables' foreign keys and secondary indexes for the block, then rebuild them.

    Run inside the loading transaction: DDL is transactional in PostgreSQL, so
    a failed load rolls the drops back with everything else. Rebuilding
    re-validates every foreign key and unique index. Elsewhere this does nothing.
    """
    if not is_postgresql():
        yield
        return
    tables = [model._meta.db_table for model in bulk_models]
    with connection.cursor() as cursor:
        # ALTER TABLE refuses tables with deferred checks still queued: run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(DEFERRED_OBJECTS_SQL, [tables, tables])
        statements = cursor.fetchall()
        for drop, _ in statements:
            cursor.execute(drop)
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
        for _, create in statements:
            cursor.execute(create)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def delete_demo_data() -> None:
    """Empty the demo tables, and on PostgreSQL whatever else points at their rows."""
    if is_postgresql():
        tables = ", ".join(connection.ops.quote_name(model._meta.db_table) for model in DEMO_DATA_MODELS)
        with connection.cursor() as cursor:
            # TRUNCATE refuses tables with deferred checks still queued (an enclosing
            # transaction wrote to them, as tests do): run those checks first.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        return
    for model in DEMO_DATA_MODELS:
        model.objects.all().delete()


def sync_id_sequences(models_with_explicit_ids: Sequence[type[models.Model]]) -> None:
    """Move id sequences past the ids written explicitly, so later inserts don't collide."""
    statements = connection.ops.sequence_reset_sql(no_style(), models_with_explicit_ids)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def refresh_planner_statistics() -> None:
    """Refresh statistics after the load, so the first queries get good plans.

    Outside a transaction this is VACUUM (ANALYZE): besides statistics it sets
    the visibility map, without which the covering indexes cannot answer
    index-only scans. Inside one (a test), plain ANALYZE is all that is allowed.
    """
    if not is_postgresql():
        return
    command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
    with connection.cursor() as cursor:
        for model in (*DEMO_DATA_MODELS, Plan):
            cursor.execute(f"{command} {connection.ops.quote_name(model._meta.db_table)}")
