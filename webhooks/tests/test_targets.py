"""The SSRF rules: at registration (literal addresses, names resolving inside) and again at delivery."""

import pytest

from webhooks import targets
from webhooks.models import WebhookDelivery
from webhooks.services import endpoint_ping
from webhooks.tests.factories import WebhookEndpointFactory
from webhooks.worker import Worker

pytestmark = pytest.mark.django_db

WEBHOOKS = "/api/v1/webhooks"
BODY = {"events": ["credits.balance_low"], "description": "ssrf"}


@pytest.fixture
def production_rules(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False


@pytest.mark.usefixtures("production_rules")
@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://127.1.2.3:8443/hook",
        "https://10.0.0.5/hook",
        "https://172.16.0.1/hook",
        "https://192.168.1.10/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.100.100.200/",
        "https://100.64.0.1/",
        "https://0.0.0.0/",
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "https://[fd00:ec2::254]/",
        "https://[::ffff:127.0.0.1]/hook",
        "https://2130706433/hook",  # 127.0.0.1 written as one number
        "https://localhost/hook",  # a name that resolves to loopback
        "https://localhost./hook",
    ],
)
def test_internal_targets_are_refused_at_registration(user_api, url):
    response = user_api.post(WEBHOOKS, {**BODY, "url": url}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_webhook_url"
    assert "url" in response.json()["error"]["details"]


@pytest.mark.usefixtures("production_rules")
@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.216.34/hook",  # https only
        "https://user:pass@93.184.216.34/hook",
        "ftp://93.184.216.34/",
        "https:///hook",
        "https://93.184.216.34/hook#fragment",
        "https://exämple.test/hook",
        "https://name.invalid/hook",  # does not resolve
    ],
)
def test_malformed_or_plain_http_urls_are_refused(user_api, url):
    response = user_api.post(WEBHOOKS, {**BODY, "url": url}, format="json")

    assert response.status_code == 400, response.content


@pytest.mark.usefixtures("production_rules")
def test_a_public_https_address_is_accepted(user_api):
    response = user_api.post(WEBHOOKS, {**BODY, "url": "https://93.184.216.34:8443/hook?x=1"}, format="json")

    assert response.status_code == 201, response.content


def test_private_targets_are_allowed_where_the_setting_is_on(user_api, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True

    response = user_api.post(WEBHOOKS, {**BODY, "url": "http://127.0.0.1:8000/hook"}, format="json")

    assert response.status_code == 201, response.content


def test_a_target_that_became_internal_is_refused_at_delivery(receiver, settings):
    # given: registered while private targets were allowed (or a DNS answer that changed since)
    endpoint = WebhookEndpointFactory(url=f"https://localhost:{receiver.port}/hook")
    delivery = endpoint_ping(endpoint=endpoint)
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False

    Worker().run(once=True)

    delivery = WebhookDelivery.objects.get(pk=delivery.pk)
    assert receiver.requests == []
    assert delivery.error.startswith("refused:"), delivery.error
    assert "127.0.0.1" in delivery.error
    assert delivery.status == "pending"
    assert delivery.attempts == 1


def test_delivery_connects_to_the_checked_address(settings, monkeypatch):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    monkeypatch.setattr(targets.socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("93.184.216.34", 443))])

    target = targets.resolve("https://hooks.example.test/in?a=1")

    assert (target.host, target.address, target.port, target.path) == (
        "hooks.example.test",
        "93.184.216.34",
        443,
        "/in?a=1",
    )
    assert target.host_header == "hooks.example.test"


def test_one_internal_address_among_public_ones_is_refused(settings, monkeypatch):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    answers = [(2, 1, 6, "", ("93.184.216.34", 443)), (2, 1, 6, "", ("10.1.2.3", 443))]
    monkeypatch.setattr(targets.socket, "getaddrinfo", lambda *a, **k: answers)

    with pytest.raises(targets.TargetRefused, match=r"10\.1\.2\.3"):
        targets.resolve("https://rebinding.example.test/")
