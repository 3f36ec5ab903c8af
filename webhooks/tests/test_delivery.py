"""The worker against a real HTTP receiver on loopback: signatures, retries, rotation, workers side by side."""

import itertools
import json
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from ops_center.tests.live_server import PROJECT_DIR, project_env
from webhooks import metrics, services
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.outbox import event_emit
from webhooks.tests.factories import WebhookEndpointFactory
from webhooks.worker import Worker

pytestmark = pytest.mark.django_db


METRIC_COUNTERS = {
    "sent": metrics.DELIVERIES_SENT,
    "retried": metrics.DELIVERIES_RETRIED,
    "failed": metrics.DELIVERIES_FAILED,
}


def drain(worker: Worker | None = None) -> int:
    return (worker or Worker(poll_interval=0.05)).run(once=True)


def ping(endpoint) -> WebhookDelivery:
    return services.endpoint_ping(endpoint=endpoint)


def test_the_signature_verifies_with_standardwebhooks_and_fails_with_one_byte_changed(receiver):
    endpoint = WebhookEndpointFactory(url=receiver.url)
    delivery = ping(endpoint)

    assert drain() == 1

    [request] = receiver.wait_for(1)
    assert request.headers["webhook-id"] == delivery.event.uid
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["content-type"] == "application/json"
    payload = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert payload["id"] == delivery.event.uid
    assert payload["type"] == "ping"
    tampered = bytearray(request.body)
    tampered[-2] ^= 0x01
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint.secret).verify(bytes(tampered), request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(services.signing.new_secret()).verify(request.body, request.headers)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status_code) == ("succeeded", 1, 200)
    assert delivery.next_attempt_at is None
    assert delivery.duration_ms is not None


def test_500_500_200_is_three_attempts_with_one_webhook_id_spaced_per_schedule(receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = "1,1,1"
    receiver.statuses = [500, 500]
    endpoint = WebhookEndpointFactory(url=receiver.url)
    delivery = ping(endpoint)
    worker = Worker(poll_interval=0.05)

    deadline = time.monotonic() + 15
    while len(receiver.requests) < 3 and time.monotonic() < deadline:
        drain(worker)
        time.sleep(0.05)

    requests = receiver.wait_for(3)
    time.sleep(0.3)
    drain(worker)
    assert len(receiver.requests) == 3
    assert {request.headers["webhook-id"] for request in requests} == {delivery.event.uid}
    assert len({request.body for request in requests}) == 1
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]
    assert all(1.0 <= gap < 1.8 for gap in gaps), gaps  # 1 s, plus up to 10 % jitter and the polling
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status_code) == ("succeeded", 3, 200)


def test_after_the_last_retry_the_delivery_is_failed(receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = "0,0"
    receiver.default = 503
    delivery = ping(WebhookEndpointFactory(url=receiver.url))

    for _ in range(5):
        drain()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status_code) == ("failed", 3, 503)
    assert delivery.next_attempt_at is None
    assert len(receiver.requests) == 3


def test_redirects_are_not_followed(receiver):
    receiver.statuses = [302]
    delivery = ping(WebhookEndpointFactory(url=receiver.url))

    drain()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_status_code) == ("pending", 302)
    assert len(receiver.requests) == 1


def test_a_slow_receiver_times_out(receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    receiver.delay = 1.0
    delivery = ping(WebhookEndpointFactory(url=receiver.url))

    drain()

    delivery.refresh_from_db()
    assert delivery.status == "pending"
    assert delivery.response_status_code is None
    assert "timeout" in delivery.error.lower()
    assert delivery.next_attempt_at > timezone.now()


def test_during_rotation_both_secrets_sign_and_afterwards_only_the_new_one(receiver):
    endpoint = WebhookEndpointFactory(url=receiver.url)
    old_secret = endpoint.secret

    rotated, new_secret = services.endpoint_rotate_secret(endpoint=endpoint)
    ping(rotated)
    drain()

    [request] = receiver.wait_for(1)
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    Webhook(new_secret).verify(request.body, request.headers)
    Webhook(old_secret).verify(request.body, request.headers)
    assert rotated.previous_secret_expires_at - timezone.now() > timedelta(hours=23, minutes=59)

    # once the overlap is over
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(previous_secret_expires_at=timezone.now())
    ping(rotated)
    drain()
    second = receiver.wait_for(2)[1]
    assert len(second.headers["webhook-signature"].split(" ")) == 1
    Webhook(new_secret).verify(second.body, second.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(second.body, second.headers)


def test_an_endpoint_failing_for_too_long_is_disabled(receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = "0,0,0,0"
    settings.WEBHOOK_DISABLE_AFTER_SECONDS = 0
    receiver.default = 500
    endpoint = WebhookEndpointFactory(url=receiver.url)
    first, second = ping(endpoint), ping(endpoint)

    drain()

    endpoint.refresh_from_db()
    assert not endpoint.is_enabled
    assert endpoint.disabled_reason == "failing"
    assert endpoint.disabled_at is not None
    assert set(WebhookDelivery.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)) == {
        "failed"
    }
    sent = len(receiver.requests)
    assert event_emit(type="credits.purchased", user_id=endpoint.user_id, data={}) is None  # no enabled endpoint
    drain()
    assert len(receiver.requests) == sent


def test_a_success_ends_the_failing_streak(receiver):
    receiver.statuses = [500]
    endpoint = WebhookEndpointFactory(url=receiver.url)
    ping(endpoint)
    drain()
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None

    ping(endpoint)
    drain()

    endpoint.refresh_from_db()
    assert endpoint.failing_since is None
    assert endpoint.is_enabled


def test_deliveries_to_one_endpoint_go_oldest_first_even_from_many_sending_threads(receiver):
    # given: eight deliveries due to one slow receiver, and a worker with eight sending threads
    receiver.delay = 0.02
    endpoint = WebhookEndpointFactory(url=receiver.url)
    uids = [ping(endpoint).event.uid for _ in range(8)]

    drain(Worker(concurrency=8))

    # then: they arrived oldest first, each after the one before it was answered
    received = receiver.wait_for(8)
    assert [request.headers["webhook-id"] for request in received] == uids
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(received)]
    assert min(gaps) >= receiver.delay, gaps


@pytest.mark.postgresql_only("SKIP LOCKED claims across processes; committed rows for the subprocesses")
@pytest.mark.django_db(transaction=True)
def test_two_once_workers_at_the_same_time_send_each_delivery_once(receiver):
    # given: 60 due deliveries to a receiver that takes 20 ms an answer
    receiver.delay = 0.02
    endpoint = WebhookEndpointFactory(url=receiver.url)
    deliveries = [ping(endpoint) for _ in range(60)]
    env = project_env(WEBHOOK_ALLOW_PRIVATE_TARGETS="1")
    command = [sys.executable, "manage.py", "deliver_webhooks", "--once", "--batch-size", "5", "--concurrency", "2"]

    # when: two workers drain at once
    workers = [
        subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]

    # then: each delivery was sent exactly once, and both workers took a share
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    ids = [request.headers["webhook-id"] for request in receiver.requests]
    assert sorted(ids) == sorted(delivery.event.uid for delivery in deliveries)
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {("succeeded", 1)}
    shares = [int(out.decode().split("deliver_webhooks: ")[1].split(" ")[0]) for out, _ in outputs]
    assert sum(shares) == 60, shares
    assert min(shares) > 0, shares


@pytest.mark.postgresql_only("a subprocess worker needs committed rows")
@pytest.mark.django_db(transaction=True)
def test_the_long_running_worker_delivers_and_stops_gracefully_on_sigterm(receiver):
    endpoint = WebhookEndpointFactory(url=receiver.url)
    env = project_env(WEBHOOK_ALLOW_PRIVATE_TARGETS="1")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "deliver_webhooks", "--poll-interval", "0.1"],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1.0)
        delivery = ping(endpoint)  # committed while the worker polls
        [request] = receiver.wait_for(1, timeout=20)
        assert request.headers["webhook-id"] == delivery.event.uid

        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=15)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err.decode()[-2000:]
    assert "stopped" in out.decode()
    delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    assert json.loads(delivery.event.body)["type"] == "ping"


def counted(counter, event_type: str = "ping") -> float:
    return counter.labels(event_type)._value.get()


def test_the_metrics_count_sent_retried_and_failed_deliveries(receiver, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_RETRY_SCHEDULE = "0"
    receiver.statuses = [500, 200, 503, 503]
    before = {name: counted(counter) for name, counter in METRIC_COUNTERS.items()}
    endpoint = WebhookEndpointFactory(url=receiver.url)

    with django_capture_on_commit_callbacks(execute=True):  # the counters move once the outcome commits
        ping(endpoint)  # 500, then 200: one retried, one sent
        drain()
        ping(endpoint)  # 503, then 503 with the schedule spent: one retried, one failed
        drain()

    after = {name: counted(counter) - before[name] for name, counter in METRIC_COUNTERS.items()}
    assert after == {"sent": 1, "retried": 2, "failed": 1}


def test_the_outbox_gauges_show_what_is_due_and_how_long_it_has_waited(receiver):
    endpoint = WebhookEndpointFactory(url=receiver.url)
    for _ in range(3):
        ping(endpoint)
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=90))
    worker = Worker()

    worker.observe_outbox()
    assert metrics.OUTBOX_DUE._value.get() == 3
    assert 90 <= metrics.OUTBOX_AGE._value.get() < 120

    drain(worker)
    assert (metrics.OUTBOX_DUE._value.get(), metrics.OUTBOX_AGE._value.get()) == (0, 0)
