"""Real threads for race tests; each closes its own database connection."""

import threading

from django.db import connections


def run_in_threads(count: int, target) -> list:
    """Start ``count`` threads at one barrier, run ``target(i)`` in each, return results in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = []

    def worker(index):
        try:
            barrier.wait()
            results[index] = target(index)
        except Exception as exc:  # surfaced below, in the test's own thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results
