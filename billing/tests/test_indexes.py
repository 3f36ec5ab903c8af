"""The hot-path indexes exist as written, and the planner uses them for the hot queries."""

import pytest
from django.apps import apps as django_apps
from django.db import connection

from billing.models import LIVE_SUBSCRIPTION_STATUSES, CreditPool, CreditTransaction, Subscription

pytestmark = pytest.mark.django_db

# name -> fragments that must appear in pg_indexes.indexdef
HOT_PATH_INDEXES = {
    "idx_credit_transactions_org_summary": [
        "ON public.credit_transactions USING btree (org_id, transaction_type, created_at DESC)",
        "INCLUDE (amount, credits_before, credits_after)",
    ],
    "idx_credit_transactions_history": [
        "ON public.credit_transactions USING btree (user_id, created_at DESC)",
        "INCLUDE (transaction_type, amount, description)",
    ],
    "idx_subscriptions_active": [
        "ON public.subscriptions USING btree (org_id, status)",
        "INCLUDE (subscription_plan, current_period_end)",
        "WHERE ((status)::text = ANY ((ARRAY['active'::character varying, 'trialing'::character varying])::text[]))",
    ],
    "idx_subscriptions_billing": [
        "ON public.subscriptions USING btree (current_period_end, status)",
        "WHERE ((status)::text = 'active'::text)",
    ],
    "idx_credit_pools_org": [
        "CREATE UNIQUE INDEX idx_credit_pools_org ON public.credit_pools USING btree (org_id)",
        "INCLUDE (total_credits, allocated_credits, used_credits, available_credits)",
    ],
    "idx_credit_pools_refresh": [
        "ON public.credit_pools USING btree (next_refresh_date)",
        "WHERE (next_refresh_date IS NOT NULL)",
    ],
}


# Left out on purpose: each duplicated an index that serves the same lookups, or no query read it.
DROPPED_INDEXES = ("idx_credit_transactions_user_balance", "idx_credit_allocation_user")
PROJECT_APPS = ("analytics", "billing", "ops_center", "orgs", "webhooks")


def index_definitions() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
        return dict(cursor.fetchall())


@pytest.mark.parametrize(("name", "fragments"), HOT_PATH_INDEXES.items())
def test_hot_path_index_exists_as_written(name, fragments):
    definition = index_definitions().get(name)
    assert definition is not None, f"{name} is missing"
    for fragment in fragments:
        assert fragment in definition


@pytest.mark.parametrize("name", DROPPED_INDEXES)
def test_dropped_index_stays_dropped(name):
    assert name not in index_definitions()


def test_one_unique_index_on_the_pools_org_id():
    """The covering index is the org's unique key too, not a second index on the same column."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE i.indrelid = 'credit_pools'::regclass AND a.attname = 'org_id'"
        )
        assert cursor.fetchone() == (1,)


def test_no_index_is_a_leading_part_of_another():
    """A plain index whose columns (with their operator classes and order) start another index over
    whole columns and every row is redundant: the longer one serves its lookups, and each write pays
    for both. A foreign key that leads such an index takes db_index=False."""
    tables = [
        model._meta.db_table
        for app in PROJECT_APPS
        for model in django_apps.get_app_config(app).get_models()
        if model._meta.managed
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.relname, ic.relname, i.indisunique, i.indpred IS NULL AND i.indexprs IS NULL,
                   array_to_string(i.indkey, ' '), array_to_string(i.indclass, ' '),
                   array_to_string(i.indoption, ' '), i.indnkeyatts
            FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
            WHERE t.relname = ANY(%s)
            """,
            [tables],
        )
        indexes = [
            (table, name, unique, whole, list(zip(keys.split()[:n], classes.split(), options.split(), strict=True)))
            for table, name, unique, whole, keys, classes, options, n in cursor.fetchall()
        ]
    redundant = [
        (shorter, longer)
        for table, shorter, unique, whole, columns in indexes
        if whole and not unique
        for longer_table, longer, _, longer_whole, longer_columns in indexes
        if longer_table == table and longer != shorter and longer_whole
        if longer_columns[: len(columns)] == columns
    ]
    assert redundant == []


def test_refresh_index_answers_the_next_day_window_query():
    """The NOW()-relative window is in the query, not in the index's predicate (which must be immutable)."""
    plan = _explain(
        "SELECT org_id FROM credit_pools WHERE next_refresh_date <= now() + interval '1 day'",
        force_index=True,
    )
    assert "idx_credit_pools_refresh" in plan


def test_statistics_targets_are_raised():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname, attstattarget FROM pg_attribute "
            "WHERE attrelid = 'credit_transactions'::regclass AND attname IN ('user_id', 'org_id')"
        )
        assert dict(cursor.fetchall()) == {"user_id": 1000, "org_id": 1000}


@pytest.fixture
def loaded_tables():
    """Enough rows, spread like production, that the planner's choice means something."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO orgs_user (password, is_superuser, username, first_name, last_name, email,
                                   is_staff, is_active, date_joined, tier)
            SELECT '', false, 'explain-' || g, '', '', '', false, true, now(), 'free'
            FROM generate_series(1, 1000) g;
            INSERT INTO orgs_organization (name, slug, created_at)
            SELECT 'Org ' || g, 'explain-org-' || g, now() FROM generate_series(1, 2000) g;
            INSERT INTO billing_plan (code, name, price_minor, currency, interval, included_credits, is_active)
            VALUES ('explain-plan', 'Plan', 4900, 'USD', 'month', 1000, true);
            INSERT INTO subscriptions (org_id, subscription_plan, status, current_period_start,
                                       current_period_end, cancel_at_period_end, created_at, updated_at)
            SELECT o.id, p.id, s.status, now() - interval '40 days', now() - interval '10 days', false, now(), now()
            FROM orgs_organization o, billing_plan p, (VALUES ('canceled'), ('canceled'), ('past_due')) s(status);
            INSERT INTO subscriptions (org_id, subscription_plan, status, current_period_start,
                                       current_period_end, cancel_at_period_end, created_at, updated_at)
            SELECT o.id, p.id, 'active', now() - interval '5 days', now() + interval '25 days', false, now(), now()
            FROM orgs_organization o, billing_plan p;
            INSERT INTO credit_pools (org_id, total_credits, allocated_credits, used_credits,
                                      next_refresh_date, updated_at)
            SELECT id, 1000, 500, 100, now() + (id % 60 || ' days')::interval, now() FROM orgs_organization;
            INSERT INTO credit_transactions (user_id, org_id, transaction_type, amount, credits_before,
                                             credits_after, description, metadata, created_at)
            SELECT u.id, NULL, 'purchase', 1, g, g + 1, 'row', '{}', now() - (g || ' minutes')::interval
            FROM generate_series(1, 40) g, orgs_user u;
            ANALYZE;
            """
        )


def _explain(sql: str, params=(), force_index: bool = False) -> str:
    with connection.cursor() as cursor:
        if force_index:
            # Small tables are cheaper to scan whole; this asks only "can it use the index?".
            cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_latest_transactions_of_a_user_use_the_history_index(loaded_tables):
    user_id = CreditTransaction.objects.values_list("user_id", flat=True).first()
    plan = CreditTransaction.objects.filter(user_id=user_id).order_by("-created_at")[:20].explain()
    assert "idx_credit_transactions_history" in plan


def test_active_subscription_of_an_org_uses_the_partial_index(loaded_tables):
    org_id = Subscription.objects.values_list("org_id", flat=True).first()
    plan = Subscription.objects.filter(org_id=org_id, status__in=LIVE_SUBSCRIPTION_STATUSES).explain()
    assert "idx_subscriptions_active" in plan


def test_pool_of_an_org_is_an_index_only_scan(loaded_tables):
    org_id = CreditPool.objects.values_list("org_id", flat=True).first()
    plan = (
        CreditPool.objects.filter(org_id=org_id)
        .values("total_credits", "allocated_credits", "used_credits", "available_credits")
        .explain()
    )
    assert "Index Only Scan using idx_credit_pools_org" in plan


def test_subscriptions_due_for_renewal_use_the_billing_index(loaded_tables):
    plan = _explain(
        "SELECT id FROM subscriptions WHERE status = 'active' AND current_period_end <= now() "
        "ORDER BY current_period_end LIMIT 100"
    )
    assert "idx_subscriptions_billing" in plan


def _explain_selector(call) -> str:
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        call()
    plans = [_explain(query["sql"]) for query in captured.captured_queries if query["sql"].startswith("SELECT")]
    return "\n".join(plans)


def test_the_subscription_endpoints_query_uses_the_partial_index(loaded_tables):
    from billing.selectors.orgs import _subscription_from_db

    org_id = Subscription.objects.values_list("org_id", flat=True).first()
    assert "idx_subscriptions_active" in _explain_selector(lambda: _subscription_from_db(org_id=org_id))


def test_the_pool_endpoints_query_uses_the_covering_index(loaded_tables):
    from billing.selectors.orgs import _pool_from_db

    org_id = CreditPool.objects.values_list("org_id", flat=True).first()
    assert "idx_credit_pools_org" in _explain_selector(lambda: _pool_from_db(org_id=org_id))


def test_the_transactions_endpoints_query_uses_the_history_index(loaded_tables):
    from billing.selectors.credits import _first_pages_from_db

    user_id = CreditTransaction.objects.values_list("user_id", flat=True).first()
    assert "idx_credit_transactions_history" in _explain_selector(lambda: _first_pages_from_db(user_id=user_id))
