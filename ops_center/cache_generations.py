"""Evictions outrank slower stores: every key has a generation.

A value is computed from the database, then stored. A write that commits and
evicts the key in between must win, or the value it replaced comes back and
is served until its TTL, after the write has answered. Two writers of one
user show it: the first reads the balance after its own commit, the second
commits, evicts and answers, and the first stores what it read.

So an eviction bumps the key's generation (a counter beside it), and a
computed value is stored only if the generation is still the one read before
computing. Only where something can be stored late: when a value was cached
(a writer may be refilling it) or the key's lock is held (a read's miss is
computing it; a refilling writer holds it too). A metering client's debits,
whose views nobody reads, delete nothing and bump nothing. In Redis the
eviction and the store are one script each, so no command comes between a
check and its store; in the quick start's in-process cache a lock does the
same for its threads.
"""

import functools
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache as django_cache

# Longer than anything may take between reading a generation and storing: a request is killed after 30 s.
GENERATION_SECONDS = 120
# How long one computation of a value holds its key's lock (the stampede lock of a read's miss).
LOCK_SECONDS = 5


def refilled_marker(key: str) -> str:
    """Present beside a value a writer refilled, until the value's first read (see ``cache.evict_and_refill``)."""
    return f"{key}:refilled"


def generation_key(key: str) -> str:
    return f"{key}:generation"


def lock_key(key: str) -> str:
    return f"lock:{key}"


def generation_in(found: Mapping[str, Any], key: str) -> str:
    """The generation a ``get_many`` that asked for ``generation_key(key)`` found ("" for none yet)."""
    return _as_generation(found.get(generation_key(key)))


def read_generation(key: str) -> str:
    return _as_generation(django_cache.get(generation_key(key)))


def _as_generation(value: Any) -> str:
    """As the store script compares it: Redis keeps the counter as text, "" where there is none."""
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Computed:
    """A value computed after reading the key's generation, to be stored only if it is still current."""

    key: str
    entry: Any
    timeout: int
    generation: str
    refilled: bool = False


# KEYS: each key, its refill marker, its generation and its lock; ARGV[1] and ARGV[2]: the
# generation's and the lock's lifetimes in seconds, then "1" for each key that may be refilled.
# Deletes the keys and markers; where a value was cached or the lock is held, bumps the generation;
# takes the lock of each refillable key that was in use (present without a marker) and returns its
# {position, generation}.
_EVICT = """
local in_use = {}
for i = 1, #ARGV - 2 do
  local at = 4 * (i - 1)
  local deleted = redis.call('DEL', KEYS[at + 1])
  local unread_refill = redis.call('DEL', KEYS[at + 2])
  if deleted == 1 or redis.call('EXISTS', KEYS[at + 4]) == 1 then
    local generation = redis.call('INCR', KEYS[at + 3])
    redis.call('EXPIRE', KEYS[at + 3], ARGV[1])
    if ARGV[i + 2] == '1' and deleted == 1 and unread_refill == 0 then
      redis.call('SET', KEYS[at + 4], '1', 'EX', ARGV[2])
      in_use[#in_use + 1] = {i, generation}
    end
  end
end
return in_use
"""

# KEYS: each key, its refill marker, its generation and its lock; ARGV: for each, the encoded value,
# its timeout, the generation read before computing it ("" for none) and "1" for a writer's refill
# (which marks it refilled and releases the lock the eviction took).
_STORE_IF_CURRENT = """
local stored = 0
for i = 1, #KEYS / 4 do
  local at = 4 * (i - 1)
  local current = redis.call('GET', KEYS[at + 3]) or ''
  if current == ARGV[at + 3] then
    redis.call('SET', KEYS[at + 1], ARGV[at + 1], 'EX', ARGV[at + 2])
    if ARGV[at + 4] == '1' then
      redis.call('SET', KEYS[at + 2], '1', 'EX', ARGV[at + 2])
    end
    stored = stored + 1
  end
  if ARGV[at + 4] == '1' then
    redis.call('DEL', KEYS[at + 4])
  end
end
return stored
"""


@functools.cache
def _script(redis_client: Any, source: str) -> Any:
    """Registered once per Redis client: a call sends EVALSHA, and EVAL only where the server lacks it."""
    return redis_client.register_script(source)


def _four_keys(client: Any, keys: Iterable[str]) -> list[str]:
    return [
        client.make_key(name)
        for key in keys
        for name in (key, refilled_marker(key), generation_key(key), lock_key(key))
    ]


def evict(keys: list[str], refillable: Collection[str]) -> dict[str, str]:
    """Delete ``keys`` and their refill markers and bump their generations where that matters, in one
    command. Returns the keys of ``refillable`` that were in use, each with its new generation, their
    locks taken for the refill. Raises when Redis fails."""
    client = getattr(django_cache, "client", None)
    if client is None:
        return _evict_in_process(keys, refillable)
    redis_client = client.get_client(write=True)
    flags = ["1" if key in refillable else "0" for key in keys]
    in_use = _script(redis_client, _EVICT)(
        keys=_four_keys(client, keys), args=[GENERATION_SECONDS, LOCK_SECONDS, *flags], client=redis_client
    )
    return {keys[position - 1]: str(generation) for position, generation in in_use}


def store_if_current(values: list[Computed]) -> int:
    """Store each value whose key's generation is still the one it was computed under; returns how many."""
    if not values:
        return 0
    client = getattr(django_cache, "client", None)
    if client is None:
        return _store_in_process(values)
    redis_client = client.get_client(write=True)
    args = [
        part
        for value in values
        for part in (client.encode(value.entry), value.timeout, value.generation, "1" if value.refilled else "0")
    ]
    return _script(redis_client, _STORE_IF_CURRENT)(
        keys=_four_keys(client, [value.key for value in values]), args=args, client=redis_client
    )


# The quick start's in-process cache: one process, so a lock orders its threads' evictions and stores.
_in_process = threading.Lock()


def _evict_in_process(keys: list[str], refillable: Collection[str]) -> dict[str, str]:
    in_use = {}
    with _in_process:
        for key in keys:
            deleted = django_cache.delete(key)
            unread_refill = django_cache.delete(refilled_marker(key))
            if not deleted and django_cache.get(lock_key(key)) is None:
                continue
            generation = (django_cache.get(generation_key(key)) or 0) + 1
            django_cache.set(generation_key(key), generation, GENERATION_SECONDS)
            if key in refillable and deleted and not unread_refill:
                django_cache.set(lock_key(key), 1, LOCK_SECONDS)
                in_use[key] = str(generation)
    return in_use


def _store_in_process(values: list[Computed]) -> int:
    stored = 0
    with _in_process:
        for value in values:
            if read_generation(value.key) == value.generation:
                django_cache.set(value.key, value.entry, value.timeout)
                if value.refilled:
                    django_cache.set(refilled_marker(value.key), 1, value.timeout)
                stored += 1
            if value.refilled:
                django_cache.delete(lock_key(value.key))
    return stored
