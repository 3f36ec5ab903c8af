"""The API's own settings, routed to the floor view only (``ops_center.benchmark.floor``).

Same middleware, DRF settings, cache and database as ``ops_center.settings``:
only ``ROOT_URLCONF`` differs, so the floor and the balance endpoint are
compared under one gunicorn config with nothing but the view changed.
"""

from ops_center.settings import *  # noqa: F403

ROOT_URLCONF = "ops_center.benchmark.floor"
