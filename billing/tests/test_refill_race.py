"""A value computed before a write's eviction is never stored after it (``ops_center.cache_generations``).

Each test holds one thread between computing a cached view from the database
and storing it, lets a write commit, evict and answer meanwhile, then lets the
first thread store. Read-your-writes means the write's client then reads the
new value, not the one computed before it.
"""

import threading
from decimal import Decimal

import pytest

from billing import selectors
from billing.services import credits_purchase
from ops_center import cache_generations

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("either_cache")]


@pytest.fixture(params=["redis", "in-process"])
def either_cache(request, settings):
    """Redis, and the quick start's in-process cache (its own lock instead of scripts)."""
    if request.param == "in-process":
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


class HeldStore:
    """Holds ``store_if_current`` in one thread, after its value was computed, until released."""

    def __init__(self, monkeypatch) -> None:
        self.computed, self.released = threading.Event(), threading.Event()
        self.held_thread: threading.Thread | None = None
        self.stored: list[int] = []
        store = cache_generations.store_if_current

        def store_when_released(values):
            if threading.current_thread() is self.held_thread:
                self.computed.set()
                assert self.released.wait(30)
                self.stored.append(store(values))
                return self.stored[-1]
            return store(values)

        monkeypatch.setattr(cache_generations, "store_if_current", store_when_released)

    def run(self, target) -> threading.Thread:
        self.held_thread = threading.Thread(target=target)
        self.held_thread.start()
        assert self.computed.wait(30)
        return self.held_thread

    def release(self, thread: threading.Thread) -> None:
        self.released.set()
        thread.join(30)
        assert not thread.is_alive()


def test_a_slow_writers_refill_does_not_overwrite_a_later_write(user_api, user, monkeypatch):
    credits_purchase(user=user, credits=Decimal("10"))
    assert user_api.get("/api/v1/credits/balance").json()["balance"] == "10.0000"  # cached and read: in use
    held = HeldStore(monkeypatch)

    first_writer = held.run(lambda: credits_purchase(user=user, credits=Decimal("5")))  # has read 15
    credits_purchase(user=user, credits=Decimal("7"))  # commits, evicts and answers: 22
    held.release(first_writer)

    assert held.stored == [0]  # the first writer's 15 was refused
    assert user_api.get("/api/v1/credits/balance").json()["balance"] == "22.0000"


def test_a_slow_readers_miss_does_not_overwrite_a_later_write(user_api, user, monkeypatch):
    credits_purchase(user=user, credits=Decimal("10"))
    held = HeldStore(monkeypatch)

    reader = held.run(lambda: selectors.balance_with_allocations(user_id=user.pk))  # a miss: has read 10
    credits_purchase(user=user, credits=Decimal("7"))  # commits, evicts and answers: 17
    held.release(reader)

    assert held.stored == [0]
    assert user_api.get("/api/v1/credits/balance").json()["balance"] == "17.0000"


def test_without_a_write_in_between_the_value_is_stored(user_api, user, monkeypatch):
    credits_purchase(user=user, credits=Decimal("10"))
    held = HeldStore(monkeypatch)

    held.release(held.run(lambda: selectors.balance_with_allocations(user_id=user.pk)))

    assert held.stored == [1]
    response = user_api.get("/api/v1/credits/balance")
    assert (response["X-Cache"], response.json()["balance"]) == ("HIT", "10.0000")
