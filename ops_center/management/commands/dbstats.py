"""python manage.py dbstats: the PostgreSQL monitoring queries we watch (index use, slow statements...) in one place."""

import io
import json
from collections.abc import Collection
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection, transaction
from rich.console import Console
from rich.table import Table

# Index usage, most scanned first. pg_stat_user_indexes names its columns
# relname and indexrelname; tablename and indexname are aliases, as pg_indexes names them.
INDEX_USAGE_SQL = """
SELECT schemaname, relname AS tablename, indexrelname AS indexname, idx_scan, idx_tup_read, idx_tup_fetch
FROM pg_stat_user_indexes
WHERE schemaname = current_schema()
ORDER BY idx_scan DESC, indexrelname
LIMIT %s
"""
# The share of index scans per table, with numeric division (integer division
# would round down) and idx_scan NULL for tables without indexes.
INDEX_SHARE_SQL = """
SELECT relname AS tablename, seq_scan, coalesce(idx_scan, 0) AS idx_scan,
       round(100.0 * coalesce(idx_scan, 0) / NULLIF(seq_scan + coalesce(idx_scan, 0), 0), 1) AS index_usage_pct
FROM pg_stat_user_tables
WHERE schemaname = current_schema() AND seq_scan + coalesce(idx_scan, 0) > 0
ORDER BY index_usage_pct DESC, relname
"""
# Indexes never scanned since the statistics were reset. Unique and primary
# keys are left out: they enforce constraints even when no query reads them.
UNUSED_INDEXES_SQL = """
SELECT s.relname AS tablename, s.indexrelname AS indexname, pg_relation_size(s.indexrelid) AS size_bytes
FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE s.schemaname = current_schema() AND s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
ORDER BY size_bytes DESC, s.indexrelname
"""
TABLE_SIZES_SQL = """
SELECT relname AS tablename, n_live_tup AS live_rows, n_dead_tup AS dead_rows,
       pg_total_relation_size(relid) AS total_bytes, pg_relation_size(relid) AS table_bytes,
       pg_indexes_size(relid) AS index_bytes
FROM pg_stat_user_tables
WHERE schemaname = current_schema()
ORDER BY total_bytes DESC, relname
LIMIT %s
"""
BUFFER_CACHE_SQL = """
SELECT (SELECT blks_hit FROM pg_stat_database WHERE datname = current_database()),
       (SELECT blks_read FROM pg_stat_database WHERE datname = current_database()),
       (SELECT coalesce(sum(heap_blks_hit), 0) FROM pg_statio_user_tables),
       (SELECT coalesce(sum(heap_blks_read), 0) FROM pg_statio_user_tables),
       (SELECT coalesce(sum(idx_blks_hit), 0) FROM pg_statio_user_indexes),
       (SELECT coalesce(sum(idx_blks_read), 0) FROM pg_statio_user_indexes)
"""
CONNECTIONS_SQL = """
SELECT count(*) FILTER (WHERE state = 'active') AS active,
       count(*) FILTER (WHERE state = 'idle') AS idle,
       count(*) FILTER (WHERE state IN ('idle in transaction', 'idle in transaction (aborted)'))
           AS idle_in_transaction,
       count(*) AS total,
       current_setting('max_connections')::int AS max_connections
FROM pg_stat_activity
WHERE backend_type = 'client backend'
"""
# The slowest statements, from pg_stat_statements. PostgreSQL 13 renamed total_time and mean_time
# to total_exec_time and mean_exec_time.
SLOW_STATEMENTS_SQL = """
SELECT query, calls, total_exec_time AS total_ms, mean_exec_time AS mean_ms, max_exec_time AS max_ms, rows
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY mean_exec_time DESC
LIMIT %s
"""
PRELOAD_HINT = (
    "pg_stat_statements is not loaded. Add shared_preload_libraries = 'pg_stat_statements' to postgresql.conf "
    "(or start the server with -c shared_preload_libraries=pg_stat_statements, as docker-compose.yml does), "
    "restart PostgreSQL, then run CREATE EXTENSION pg_stat_statements; in this database."
)
CREATE_HINT = (
    "pg_stat_statements is not created in this database: run CREATE EXTENSION pg_stat_statements; "
    "as a superuser. It also has to be in shared_preload_libraries, which needs a server restart."
)


class Command(BaseCommand):
    help = (
        "PostgreSQL diagnostics: index usage, index share per table, unused indexes, table sizes, the shared-buffer "
        "cache hit ratio, the slowest statements (pg_stat_statements) and connections against max_connections."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print one JSON object, for machines.")
        parser.add_argument("--limit", type=int, default=10, help="Rows per top-N section.")

    def handle(self, *args, **options):
        if connection.vendor != "postgresql":
            raise CommandError(
                f"dbstats reads PostgreSQL's statistics views; this database is {connection.vendor}. "
                "Point DATABASE_URL at PostgreSQL."
            )
        stats = collect(options["limit"])
        if options["json"]:
            self.stdout.write(json.dumps(stats, indent=2, default=_jsonable))
        else:
            self.stdout.write(render(stats))


def collect(limit: int) -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), current_setting('server_version'), now()")
        database, version, taken_at = cursor.fetchone()
        cursor.execute("SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()")
        (stats_reset,) = cursor.fetchone()
        return {
            "database": database,
            "server_version": version,
            "taken_at": taken_at.isoformat(),
            "stats_reset": stats_reset.isoformat() if stats_reset else None,
            "index_usage": _rows(cursor, INDEX_USAGE_SQL, [limit]),
            "index_usage_share": _rows(cursor, INDEX_SHARE_SQL),
            "unused_indexes": _rows(cursor, UNUSED_INDEXES_SQL),
            "table_sizes": _rows(cursor, TABLE_SIZES_SQL, [limit]),
            "buffer_cache": _buffer_cache(cursor),
            "slow_statements": _slow_statements(cursor, limit),
            "connections": _rows(cursor, CONNECTIONS_SQL)[0],
        }


def _rows(cursor, sql: str, params=None) -> list[dict]:
    cursor.execute(sql, params)
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _buffer_cache(cursor) -> dict:
    cursor.execute(BUFFER_CACHE_SQL)
    db_hit, db_read, heap_hit, heap_read, idx_hit, idx_read = (int(value or 0) for value in cursor.fetchone())
    return {
        "database": _ratio(db_hit, db_read),
        "tables": _ratio(heap_hit, heap_read),
        "indexes": _ratio(idx_hit, idx_read),
    }


def _ratio(hits: int, reads: int) -> dict:
    return {"hits": hits, "reads": reads, "hit_pct": round(100 * hits / (hits + reads), 2) if hits + reads else None}


def _slow_statements(cursor, limit: int) -> dict:
    """The slowest statements by mean time, or how to enable pg_stat_statements when it is missing."""
    cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
    if cursor.fetchone() is None:
        return {"available": False, "hint": CREATE_HINT if _preloaded(cursor) else PRELOAD_HINT}
    try:
        # A savepoint, so a failure here leaves an enclosing transaction usable.
        with transaction.atomic():
            statements = _rows(cursor, SLOW_STATEMENTS_SQL, [limit])
    except DatabaseError as exc:
        # Created but not preloaded: "pg_stat_statements must be loaded via shared_preload_libraries".
        return {"available": False, "hint": PRELOAD_HINT, "error": str(exc).strip()}
    return {"available": True, "statements": statements}


def _preloaded(cursor) -> bool:
    try:
        with transaction.atomic():
            cursor.execute("SELECT current_setting('shared_preload_libraries')")
            (libraries,) = cursor.fetchone()
    except DatabaseError:  # only superusers and pg_read_all_settings may read it
        return False
    return "pg_stat_statements" in (library.strip() for library in libraries.split(","))


def _jsonable(value):
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def render(stats: dict) -> str:
    out = io.StringIO()
    console = Console(file=out, width=140, force_terminal=False, no_color=True)
    console.print(
        f"Database {stats['database']} on PostgreSQL {stats['server_version']}, statistics since "
        f"{stats['stats_reset'] or 'the cluster started'}"
    )
    _table(console, "Index usage (most scanned)", stats["index_usage"], exclude={"schemaname"})
    _table(console, "Index usage share per table", stats["index_usage_share"])
    _table(console, "Unused indexes (never scanned; unique and primary keys left out)", stats["unused_indexes"])
    _table(console, "Table sizes", stats["table_sizes"])
    cache = stats["buffer_cache"]
    console.print("\nShared-buffer cache hit ratio")
    for name in ("database", "tables", "indexes"):
        numbers = cache[name]
        share = "n/a" if numbers["hit_pct"] is None else f"{numbers['hit_pct']:.2f}%"
        console.print(f"  {name:<9} {share:>8}  ({numbers['hits']:,} hits, {numbers['reads']:,} reads)")
    slow = stats["slow_statements"]
    if slow["available"]:
        rows = [{**row, "query": " ".join(row["query"].split())[:80]} for row in slow["statements"]]
        _table(console, "Slowest statements by mean time (pg_stat_statements)", rows)
    else:
        console.print(f"\nSlowest statements: unavailable. {slow['hint']}")
    links = stats["connections"]
    console.print(
        f"\nConnections: {links['total']} of max_connections {links['max_connections']} "
        f"({links['active']} active, {links['idle']} idle, {links['idle_in_transaction']} idle in transaction)"
    )
    return out.getvalue()


def _table(console: Console, title: str, rows: list[dict], exclude: Collection[str] = frozenset()) -> None:
    console.print(f"\n{title}")
    if not rows:
        console.print("  (none)")
        return
    columns = [name for name in rows[0] if name not in exclude]
    table = Table(*columns, show_edge=False, pad_edge=False)
    for row in rows:
        table.add_row(*(_cell(name, row[name]) for name in columns))
    console.print(table)


def _cell(column: str, value) -> str:
    if value is None:
        return "-"
    if column.endswith("_bytes"):
        return _size(value)
    if isinstance(value, (float, Decimal)):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


SIZE_UNITS = ("bytes", "kB", "MB", "GB", "TB")


def _size(size: float) -> str:
    unit = 0
    while size >= 1024 and unit < len(SIZE_UNITS) - 1:
        size /= 1024
        unit += 1
    return f"{size:,.0f} bytes" if unit == 0 else f"{size:,.1f} {SIZE_UNITS[unit]}"
