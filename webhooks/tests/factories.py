import factory

from orgs.tests.factories import UserFactory
from webhooks import signing
from webhooks.models import SUBSCRIBABLE_EVENTS, WebhookEndpoint


class WebhookEndpointFactory(factory.django.DjangoModelFactory):
    """A personal endpoint subscribed to every event; pass org=... (and user=None) for an org's."""

    class Meta:
        model = WebhookEndpoint

    user = factory.SubFactory(UserFactory)
    org = None
    url = "http://127.0.0.1:9/hook"
    events = factory.LazyFunction(lambda: list(SUBSCRIBABLE_EVENTS))
    secret = factory.LazyFunction(signing.new_secret)
