"""Credit endpoints. Thin: validate input, call one selector or service, render."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors, services
from billing.api import serializers
from billing.models import CreditPackage
from billing.selectors.credits import balance_key, cached_page_after, history_pages_key, usage_summary_key
from ops_center.api.fast_reads import FastRead, FastReadMixin, any_text, exactly
from ops_center.api.fast_writes import FastWrite, FastWriteMixin
from ops_center.api.pagination import DEFAULT_LIMIT
from ops_center.api.responses import with_cache_header
from ops_center.api.schema import IDEMPOTENCY_HEADER, error_responses
from orgs.api.authentication import user_from_principal

READ_ERRORS = error_responses(400, 401, 503)
WRITE_ERRORS = error_responses(400, 401, 402, 403, 404, 413, 415, 422, 429, 503)


def _cached_value(_principal, _kwargs, _query, values):
    return values[0]


def _history_page(_principal, _kwargs, query, values):
    pages = values[0]
    return pages[0] if "cursor" not in query else cached_page_after(pages=pages, cursor=query["cursor"])


class BalanceView(FastReadMixin, APIView):
    fast_read = FastRead(keys=lambda user_id, _kwargs, _query: [balance_key(user_id=user_id)], answer=_cached_value)

    @extend_schema(
        operation_id="credits_balance",
        summary="The caller's credit balance, org allocations and total available",
        responses={200: serializers.BalanceOut, **READ_ERRORS},
    )
    def get(self, request):
        data, hit = selectors.balance_with_allocations(user_id=request.user.pk)
        return with_cache_header(Response(data), hit)


class UsageSummaryView(FastReadMixin, APIView):
    fast_read = FastRead(
        keys=lambda user_id, _kwargs, _query: [usage_summary_key(user_id=user_id)],
        answer=_cached_value,
        query={"days": exactly(str(selectors.DEFAULT_SUMMARY_DAYS))},
    )

    @extend_schema(
        operation_id="credits_usage_summary",
        summary="Credits used per day and per service over a window",
        parameters=[serializers.SummaryParams],
        responses={200: serializers.UsageSummaryOut, **READ_ERRORS},
    )
    def get(self, request):
        params = serializers.SummaryParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        data, hit = selectors.usage_summary(user_id=request.user.pk, days=params.validated_data["days"])
        return with_cache_header(Response(data), hit)


class TransactionsView(FastReadMixin, APIView):
    fast_read = FastRead(
        keys=lambda user_id, _kwargs, _query: [history_pages_key(user_id=user_id)],
        answer=_history_page,
        query={"limit": exactly(str(DEFAULT_LIMIT)), "cursor": any_text},
    )

    @extend_schema(
        operation_id="credits_transactions",
        summary="The caller's ledger, newest first, cursor-paginated",
        parameters=[serializers.TransactionFilters],
        responses={200: serializers.TransactionPageOut, **READ_ERRORS},
    )
    def get(self, request):
        filters = serializers.TransactionFilters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page, hit = selectors.transactions_page(user_id=request.user.pk, **filters.validated_data)
        return with_cache_header(Response(page), hit)


class PackagesView(APIView):
    @extend_schema(
        operation_id="credits_packages",
        summary="Credit packages on sale",
        responses={200: serializers.PackageOut(many=True), **error_responses(401)},
    )
    def get(self, request):
        packages = CreditPackage.objects.filter(is_active=True).values(
            "code", "name", "credits", "price_minor", "currency"
        )
        return Response(list(packages))


def _purchase(user, idempotency_key, data):
    result = services.credits_purchase(
        user=user, package_code=data.get("package"), credits=data.get("credits"), idempotency_key=idempotency_key
    )
    payload = {
        "transaction": serializers.transaction_out(result.transaction),
        "balance": result.balance,
        "invoice_id": result.invoice.pk,
    }
    return 201, payload


def _consume(user, idempotency_key, data):
    result = services.credits_consume(user=user, idempotency_key=idempotency_key, **data)
    return 201, _consumed(result.transaction, result.balance)


def _consume_at_once(user, claim, data):
    result = services.credits_consume_at_once(user=user, claim=claim, **data)
    return None if result is None else (201, _consumed(result.transaction, result.balance))


def _consumed_by_key(user_id, idempotency_key):
    """The first answer to a debit claimed at once, from its ledger row (the balance after is the row's)."""
    row = selectors.ledger_row_by_key(user_id=user_id, idempotency_key=idempotency_key)
    return 201, _consumed(row, row.credits_after)


def _consumed(ledger_row, balance):
    return {"transaction": serializers.transaction_out(ledger_row), "balance": balance}


class PurchaseView(FastWriteMixin, APIView):
    fast_write = FastWrite(input=serializers.PurchaseInput, write=_purchase, user_from_principal=user_from_principal)

    @extend_schema(
        operation_id="credits_purchase",
        summary="Buy a credit package or a custom number of credits",
        request=serializers.PurchaseInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: serializers.CreditsWriteOut, **WRITE_ERRORS},
    )
    def post(self, request):
        return self.write_the_ordinary_way(request)


def _pricing_rule_of(body: dict) -> list[tuple]:
    service = body.get("service")
    return [selectors.pricing_rule_key(service=service)] if isinstance(service, str) else []


class UsageView(FastWriteMixin, APIView):
    fast_write = FastWrite(
        input=serializers.UsageInput,
        write=_consume,
        user_from_principal=user_from_principal,
        read_ahead=_pricing_rule_of,
        write_at_once=_consume_at_once,
        rendered_later=_consumed_by_key,
    )

    @extend_schema(
        operation_id="credits_consume",
        summary="Meter usage: debit credits atomically, or answer 402 with the shortfall",
        request=serializers.UsageInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: serializers.CreditsWriteOut, **WRITE_ERRORS},
    )
    def post(self, request):
        return self.write_the_ordinary_way(request)
