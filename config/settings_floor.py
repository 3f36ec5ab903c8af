"""The API's own settings, routed to the floor view only (``loadtests.benchmark.floor``).

Same middleware, DRF settings, cache and database as ``config.settings``:
only ``ROOT_URLCONF`` differs, so the floor and the balance endpoint are
compared under one gunicorn config with nothing but the view changed.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "loadtests.benchmark.floor"
