"""Database helpers shared by the apps."""

from django.db import models


class ReportIndex(models.Index):
    """An index that keeps the performance report's exact name.

    Django caps index names at 30 characters for Oracle's sake; PostgreSQL and
    SQLite allow 63, and the report's diagnostics (``\\di+ idx_credit_*``) rely
    on the long names.
    """

    max_name_length = 63
