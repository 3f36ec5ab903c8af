"""The kinds of write a cached view can be changed by (``ops_center.cache.register_view``).

A write names what it changed, and only the views that change with it are
evicted and refilled: a purchase leaves the usage summary and an org's
subscription cached, because neither can have moved.
"""

# A ledger row: a balance moved (personal, an allocation, or an org's pool with it), and the history grew.
LEDGER_ROW = "ledger_row"
# Metered usage: the daily usage rollups grew (always with a ledger row).
USAGE = "usage"
# A member's allocation row was saved: the member's balance lists it.
ALLOCATION = "allocation"
