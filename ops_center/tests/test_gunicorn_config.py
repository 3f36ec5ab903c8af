"""config/gunicorn.py's sizing and recycling: the defaults configuration.md documents, as measured."""

import runpy
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[2] / "config" / "gunicorn.py"


def sizing(monkeypatch, tmp_path, **environment) -> tuple[int, int]:
    for name in ("REDIS_URL", "WEB_CONCURRENCY", "GUNICORN_THREADS"):
        monkeypatch.delenv(name, raising=False)
    # Given, so that the config neither makes a metrics directory nor leaves it in this process's environment.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("multiprocessing.cpu_count", lambda: 2)
    config = runpy.run_path(str(CONFIG))
    return config["workers"], config["threads"]


def test_with_redis_cores_plus_one_processes_serve_with_two_threads_each(monkeypatch, tmp_path):
    assert sizing(monkeypatch, tmp_path, REDIS_URL="redis://127.0.0.1:6379/0") == (3, 2)


def test_without_redis_one_process_holds_the_only_cache(monkeypatch, tmp_path):
    assert sizing(monkeypatch, tmp_path) == (1, 8)


@pytest.mark.parametrize(("workers", "threads"), [("5", "4"), ("9", "1")])
def test_the_environment_overrides_both(monkeypatch, tmp_path, workers, threads):
    sized = sizing(
        monkeypatch, tmp_path, REDIS_URL="redis://127.0.0.1:6379/0", WEB_CONCURRENCY=workers, GUNICORN_THREADS=threads
    )
    assert sized == (int(workers), int(threads))


def recycling(monkeypatch, tmp_path, **environment) -> tuple[int, int]:
    monkeypatch.delenv("GUNICORN_MAX_REQUESTS", raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    config = runpy.run_path(str(CONFIG))
    return config["max_requests"], config["max_requests_jitter"]


def test_workers_are_recycled_seldom_and_not_together(monkeypatch, tmp_path):
    assert recycling(monkeypatch, tmp_path) == (100_000, 10_000)
    assert recycling(monkeypatch, tmp_path, GUNICORN_MAX_REQUESTS="5000") == (5000, 500)
    assert recycling(monkeypatch, tmp_path, GUNICORN_MAX_REQUESTS="0") == (0, 0)
