"""Input serializers validate; output serializers document the hand-built dicts."""

from rest_framework import serializers

from ops_center.api.fields import QueryParams, cursor_field, limit_field
from webhooks.models import SUBSCRIBABLE_EVENTS, EventType, WebhookDelivery, WebhookEndpoint
from webhooks.targets import MAX_URL_LENGTH


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only (DRF would also take "yes", 1, "on")."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)


class EndpointIn(serializers.Serializer):
    url = serializers.CharField(
        max_length=MAX_URL_LENGTH,
        trim_whitespace=False,
        help_text="https:// URL (http:// and private addresses only where WEBHOOK_ALLOW_PRIVATE_TARGETS is on).",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=SUBSCRIBABLE_EVENTS), min_length=1, max_length=len(SUBSCRIBABLE_EVENTS)
    )
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class EndpointPatch(serializers.Serializer):
    url = serializers.CharField(max_length=MAX_URL_LENGTH, required=False, trim_whitespace=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=SUBSCRIBABLE_EVENTS),
        min_length=1,
        max_length=len(SUBSCRIBABLE_EVENTS),
        required=False,
    )
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    enabled = StrictBooleanField(required=False, help_text="false disables; true enables again (and clears failing).")


class EndpointOut(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    events = serializers.ListField(child=serializers.ChoiceField(choices=SUBSCRIBABLE_EVENTS))
    enabled = serializers.BooleanField()
    disabled_reason = serializers.ChoiceField(choices=WebhookEndpoint.DisabledReason.choices, allow_blank=True)
    disabled_at = serializers.DateTimeField(allow_null=True)
    failing_since = serializers.DateTimeField(allow_null=True)
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True, help_text="Until then the previous secret also signs every request."
    )
    user_id = serializers.IntegerField(allow_null=True)
    org_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class EndpointCreatedOut(EndpointOut):
    secret = serializers.CharField(help_text="whsec_...: shown once, here.")


class EndpointListOut(serializers.Serializer):
    results = EndpointOut(many=True)


class DeletedOut(serializers.Serializer):
    id = serializers.IntegerField()
    deleted = serializers.BooleanField()


class SecretOut(serializers.Serializer):
    id = serializers.IntegerField()
    secret = serializers.CharField(help_text="The new whsec_... secret: shown once, here.")
    previous_secret_expires_at = serializers.DateTimeField()


class DeliveryOut(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.IntegerField()
    event_uid = serializers.CharField(help_text="The payload's id and the webhook-id header.")
    event_type = serializers.ChoiceField(choices=EventType.choices)
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices)
    attempts = serializers.IntegerField()
    response_status_code = serializers.IntegerField(allow_null=True, help_text="Of the last attempt.")
    duration_ms = serializers.IntegerField(allow_null=True, help_text="Of the last attempt.")
    error = serializers.CharField(allow_blank=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True, help_text="The next retry, while pending.")
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class DeliveryPageOut(serializers.Serializer):
    results = DeliveryOut(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class DeliveryParams(QueryParams):
    cursor = cursor_field()
    limit = limit_field()
