"""Admin for plans, subscriptions, pools and the credit ledger.

Credits move only through billing services, which write a ledger row with
every change; the admin therefore shows ledger rows and balances read-only and
never edits a pool or allocation counter.

The ledger holds millions of rows. Its changelist skips the second COUNT(*),
never offers facet counts, filters only on fixed choices (no DISTINCT over the
table), has no date hierarchy (its MIN/MAX and DISTINCT years would scan the
whole ledger) and sorts only on the default order.
"""

from collections.abc import Sequence

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Q
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from billing.errors import InsufficientCredits
from billing.models import (
    CreditAccount,
    CreditAllocation,
    CreditFlowDaily,
    CreditPackage,
    CreditPool,
    CreditTransaction,
    Invoice,
    OrgUsageDaily,
    Plan,
    PricingRule,
    RevenueDaily,
    Subscription,
    UsageDaily,
    UserActivity,
)
from billing.money import CREDIT_DECIMAL_PLACES, CREDIT_MAX_DIGITS, format_minor_units
from billing.services import credits_adjust
from ops_center.errors import ApplicationError
from orgs.models import User


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable by staff with the view permission; nobody adds, edits or deletes."""

    # No actions at all: not even "delete selected", and no checkbox column.
    actions: Sequence[str] | None = None

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class SearchByUserAdmin(admin.ModelAdmin):
    """Search a big per-user table by exact username or email."""

    search_fields = ("=user__username", "=user__email")  # shows the box; matching is below
    search_help_text = "Exact username or email."

    def get_search_results(self, request, queryset, search_term):
        # Look the user up first. Joined in one query, the planner cannot tell
        # that one user matches and scans the whole table (about 250 ms on a
        # million ledger rows); given their ids it reads the per-user index.
        term = search_term.strip()
        if not term:
            return queryset, False
        user_ids = User.objects.filter(Q(username__iexact=term) | Q(email__iexact=term)).values_list("id", flat=True)
        return queryset.filter(user_id__in=list(user_ids)), False


class FixedParentsAdmin(admin.ModelAdmin):
    """Parents chosen when a row is added stay fixed: moving the row would move its credits."""

    fixed_after_add: tuple[str, ...] = ()

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        return (*readonly, *self.fixed_after_add) if obj else readonly


@admin.display(description="Price", ordering="price_minor")
def price(priced: Plan | CreditPackage) -> str:
    return format_minor_units(priced.price_minor, priced.currency)


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("code", "name", price, "interval", "included_credits", "is_active")
    list_filter = ("is_active", "interval")
    search_fields = ("code", "name")


@admin.register(CreditPackage)
class CreditPackageAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "credits", price, "is_active")
    list_filter = ("is_active",)
    search_fields = ("code", "name")


@admin.register(PricingRule)
class PricingRuleAdmin(admin.ModelAdmin):
    list_display = ("service", "credits_per_unit", "is_active", "description")
    list_filter = ("is_active",)
    search_fields = ("service", "description")


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "org",
        "plan",
        "status",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
    )
    list_select_related = ("org", "plan")
    list_filter = ("status", "plan", "cancel_at_period_end")
    search_fields = ("org__name", "=org__slug")
    autocomplete_fields = ("org", "plan")
    date_hierarchy = "current_period_end"


@admin.register(CreditPool)
class CreditPoolAdmin(FixedParentsAdmin):
    list_display = (
        "org",
        "total_credits",
        "allocated_credits",
        "used_credits",
        "available_credits",
        "next_refresh_date",
        "updated_at",
    )
    list_select_related = ("org",)
    search_fields = ("org__name", "=org__slug")
    autocomplete_fields = ("org",)
    # The alert thresholds belong to the org's admins (PUT .../credit-pool/alerts); shown, not edited here.
    readonly_fields = (
        "total_credits",
        "allocated_credits",
        "used_credits",
        "available_credits",
        "low_pool_threshold",
        "low_allocation_threshold",
        "updated_at",
    )
    fixed_after_add = ("org",)
    date_hierarchy = "next_refresh_date"


@admin.register(CreditAllocation)
class CreditAllocationAdmin(FixedParentsAdmin):
    list_display = ("user", "pool", "allocated_credits", "used_credits", "note", "updated_at")
    list_select_related = ("user", "pool")
    search_fields = ("=user__username", "=user__email", "=pool__org__slug")
    search_help_text = "Exact username, email or organization slug."
    raw_id_fields = ("user",)
    autocomplete_fields = ("pool",)
    readonly_fields = ("allocated_credits", "used_credits", "updated_at")
    fixed_after_add = ("pool", "user")
    date_hierarchy = "updated_at"


class AdjustCreditsForm(forms.Form):
    amount = forms.DecimalField(
        max_digits=CREDIT_MAX_DIGITS,
        decimal_places=CREDIT_DECIMAL_PLACES,
        help_text="Positive to grant credits, negative to take them back. A balance never goes below zero.",
    )
    reason = forms.CharField(max_length=200, help_text="Recorded on the ledger row with your username.")

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("The amount must not be zero.")
        return amount


@admin.register(CreditAccount)
class CreditAccountAdmin(SearchByUserAdmin, ReadOnlyAdmin):
    """Balances never change here directly; the adjust action writes ledger rows through the service."""

    actions = ["adjust_credits"]
    list_display = ("user", "balance", "updated_at", "ledger_link")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    date_hierarchy = "updated_at"
    ordering = ("-id",)
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def has_adjust_permission(self, request) -> bool:
        return request.user.has_perm("billing.add_credittransaction")

    @admin.action(description="Grant or adjust credits", permissions=["adjust"])
    def adjust_credits(self, request, queryset):
        form = AdjustCreditsForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": "Grant or adjust credits",
                "accounts": queryset.select_related("user"),
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/billing/adjust_credits.html", context)
        amount, reason = form.cleaned_data["amount"], form.cleaned_data["reason"]
        for account in queryset.select_related("user"):
            try:
                result = credits_adjust(actor=request.user, user=account.user, amount=amount, reason=reason)
            except InsufficientCredits:
                self.message_user(
                    request, f"{account.user}: balance {account.balance} cannot cover {amount}.", messages.ERROR
                )
                continue
            except ApplicationError as refusal:
                self.message_user(request, f"{account.user}: {refusal.message}", messages.ERROR)
                continue
            self.message_user(request, f"{account.user}: {amount:+} credits, balance now {result.balance}.")
        return None

    @admin.display(description="Ledger")
    def ledger_link(self, account: CreditAccount) -> str:
        # Filtering by user keeps the ledger changelist on its (user_id, created_at DESC) index.
        url = reverse("admin:billing_credittransaction_changelist")
        return format_html('<a href="{}?user__id__exact={}">Transactions</a>', url, account.user_id)


@admin.register(CreditTransaction)
class CreditTransactionAdmin(SearchByUserAdmin, ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "user",
        "org",
        "transaction_type",
        "amount",
        "credits_before",
        "credits_after",
        "description",
    )
    list_select_related = ("user", "org")
    # Fixed choices and fixed date ranges: neither needs a query to draw.
    list_filter = ("transaction_type", "created_at")
    raw_id_fields = ("user", "org")
    ordering = ("-created_at", "-id")
    sortable_by = ()
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    """A record of money taken; corrections are refunds through services, never edits."""

    list_display = ("id", "created_at", "source", "status", "amount", "credits", "org", "user", "paid_at")
    list_select_related = ("org", "user")
    list_filter = ("status", "source")
    search_fields = ("=user__username", "=user__email", "=org__slug")
    search_help_text = "Exact username, email or organization slug."
    raw_id_fields = ("user", "subscription", "org")
    date_hierarchy = "created_at"
    ordering = ("-id",)
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    @admin.display(description="Amount", ordering="amount_minor")
    def amount(self, invoice: Invoice) -> str:
        return format_minor_units(invoice.amount_minor, invoice.currency)


@admin.register(UsageDaily)
class UsageDailyAdmin(SearchByUserAdmin, ReadOnlyAdmin):
    """The daily usage rollup, upserted with each usage write; as big as the ledger, so kept as lean."""

    list_display = ("day", "user", "org", "service", "credits", "units", "events")
    list_select_related = ("user", "org")
    # No filter on service: without fixed choices it would need a DISTINCT over the table.
    list_filter = ("day",)
    raw_id_fields = ("user", "org")
    ordering = ("-day", "-id")
    sortable_by = ()
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER


@admin.register(RevenueDaily)
class RevenueDailyAdmin(ReadOnlyAdmin):
    """Kept by the services and rebuild_rollups; shown for audits, never edited."""

    list_display = ("day", "currency", "source", "shard", "amount", "invoices")
    list_filter = ("source", "currency", "day")
    ordering = ("-day", "source", "shard")

    @admin.display(description="Amount", ordering="amount_minor")
    def amount(self, row: RevenueDaily) -> str:
        return format_minor_units(row.amount_minor, row.currency)


@admin.register(CreditFlowDaily)
class CreditFlowDailyAdmin(ReadOnlyAdmin):
    list_display = ("day", "shard", "purchased", "consumed", "granted", "refreshed")
    list_filter = ("day",)
    ordering = ("-day", "shard")


@admin.register(OrgUsageDaily)
class OrgUsageDailyAdmin(ReadOnlyAdmin):
    list_display = ("day", "org", "credits")
    list_select_related = ("org",)
    list_filter = ("day",)
    raw_id_fields = ("org",)
    ordering = ("-day", "org_id")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER


@admin.register(UserActivity)
class UserActivityAdmin(SearchByUserAdmin, ReadOnlyAdmin):
    list_display = ("user", "last_usage_on")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    ordering = ("-last_usage_on", "user_id")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
