"""Demo data for local runs and load tests, loaded by ``manage.py seed_demo``.

``catalog`` holds the fixed price lists, ``population`` draws users and
organizations, ``ledger`` draws the credit history, ``load`` streams rows into
the database and ``keys`` issues the load-test API keys. Everything is drawn
from one ``random.Random(seed)``, so a seed always gives the same data set.
"""
