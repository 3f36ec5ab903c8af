"""Admin for webhooks: read-only, apart from disabling endpoints and redelivering.

Endpoints, events and deliveries are written by their services (the API, the
outbox, the worker); staff see them here, filter by status, disable an
endpoint, and send deliveries again. Secrets are never shown.
"""

from django.contrib import admin, messages

from webhooks import services
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnly):
    list_display = ("id", "url", "user", "org", "is_enabled", "disabled_reason", "failing_since", "created_at")
    list_filter = ("is_enabled", "disabled_reason")
    list_select_related = ("user", "org")
    search_fields = ("=id", "url")
    fields = (
        "id",
        "user",
        "org",
        "url",
        "description",
        "events",
        "is_enabled",
        "disabled_reason",
        "disabled_at",
        "failing_since",
        "previous_secret_expires_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = ["disable"]
    show_facets = admin.ShowFacets.NEVER

    @admin.action(description="Disable the selected endpoints (their pending deliveries fail)")
    def disable(self, request, queryset):
        count = 0
        for endpoint in queryset.filter(is_enabled=True):
            services.endpoint_disable(endpoint=endpoint)
            count += 1
        self.message_user(request, f"Disabled {count} endpoint(s).", messages.SUCCESS)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnly):
    list_display = ("id", "uid", "type", "user_id", "org_id", "created_at")
    list_filter = ("type",)
    search_fields = ("=uid", "=user_id", "=org_id")
    fields = ("id", "uid", "type", "user_id", "org_id", "body", "created_at")
    readonly_fields = fields
    actions = None
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnly):
    list_display = (
        "id",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "response_status_code",
        "duration_ms",
        "next_attempt_at",
        "last_attempt_at",
    )
    list_filter = ("status",)
    list_select_related = ("event", "endpoint")
    search_fields = ("=id", "=event__uid", "=endpoint__id")
    fields = (
        "id",
        "endpoint",
        "event",
        "status",
        "attempts",
        "next_attempt_at",
        "last_attempt_at",
        "response_status_code",
        "duration_ms",
        "error",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = ["redeliver"]
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False

    @admin.display(description="event")
    def event_type(self, delivery):
        return delivery.event.type

    @admin.action(description="Redeliver the selected deliveries' events (new deliveries, same webhook-id)")
    def redeliver(self, request, queryset):
        sent, skipped = 0, 0
        for delivery in queryset.select_related("endpoint"):
            try:
                services.delivery_redeliver(delivery=delivery)
                sent += 1
            except services.EndpointDisabled:
                skipped += 1
        self.message_user(request, f"Queued {sent} redelivery(ies); {skipped} skipped (endpoint disabled).")
