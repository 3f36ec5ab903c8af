"""Database helpers shared by the apps."""

import copy

from django.db import models


class LongNameIndex(models.Index):
    """An index that keeps its name exactly as written, up to PostgreSQL's 63 characters.

    Django caps index names at 30 characters for Oracle's sake; PostgreSQL and
    SQLite allow 63. The hot-path indexes carry long names that say what they
    serve (``idx_credit_transactions_history``): the EXPLAIN tests look for
    them, and ``dbstats`` and ``\\di+ idx_credit_*`` list them.
    """

    max_name_length = 63


class CoveringUniqueConstraint(models.UniqueConstraint):
    """A unique constraint whose ``include`` columns let its index answer a lookup alone.

    Django leaves a unique constraint with ``include`` out entirely on a database
    without covering indexes, uniqueness and all. This one stays a plain unique
    constraint there (SQLite, the quick start) and loses only the extra columns.
    """

    def _as_supported(self, schema_editor) -> "CoveringUniqueConstraint":
        if schema_editor.connection.features.supports_covering_indexes:
            return self
        keys_only = copy.copy(self)
        keys_only.include = ()  # type: ignore[attr-defined]  # django-stubs leave out UniqueConstraint.include
        return keys_only

    def _check(self, model, connection):
        # Django's warning that the constraint is not created there (W039) is not true of this one.
        # django-stubs leave out BaseConstraint._check (Django 5.1's system checks of a constraint).
        checks = super()._check(model, connection)  # type: ignore[misc]
        return [error for error in checks if error.id != "models.W039"]

    def constraint_sql(self, model, schema_editor):
        return super(CoveringUniqueConstraint, self._as_supported(schema_editor)).constraint_sql(model, schema_editor)

    def create_sql(self, model, schema_editor):
        return super(CoveringUniqueConstraint, self._as_supported(schema_editor)).create_sql(model, schema_editor)

    def remove_sql(self, model, schema_editor):
        return super(CoveringUniqueConstraint, self._as_supported(schema_editor)).remove_sql(model, schema_editor)
