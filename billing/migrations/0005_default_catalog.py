"""Starting catalog: credit packages and pricing rules, editable in the admin afterwards."""

from decimal import Decimal

from django.db import migrations

PACKAGES = [
    ("credits-1k", "1,000 credits", Decimal("1000"), 1000),
    ("credits-10k", "10,000 credits", Decimal("10000"), 9000),
    ("credits-100k", "100,000 credits", Decimal("100000"), 80000),
]
PRICING_RULES = [
    ("chat-completion", "Per 1,000 tokens", Decimal("2.0000")),
    ("embedding", "Per 1,000 tokens", Decimal("0.1000")),
    ("image-generation", "Per image", Decimal("40.0000")),
    ("speech-to-text", "Per second of audio", Decimal("0.1000")),
]


def add_catalog(apps, schema_editor):
    CreditPackage = apps.get_model("billing", "CreditPackage")
    PricingRule = apps.get_model("billing", "PricingRule")
    for code, name, credits, price_minor in PACKAGES:
        CreditPackage.objects.get_or_create(
            code=code, defaults={"name": name, "credits": credits, "price_minor": price_minor, "currency": "USD"}
        )
    for service, description, rate in PRICING_RULES:
        PricingRule.objects.get_or_create(
            service=service, defaults={"description": description, "credits_per_unit": rate}
        )


def remove_catalog(apps, schema_editor):
    apps.get_model("billing", "CreditPackage").objects.filter(code__in=[p[0] for p in PACKAGES]).delete()
    apps.get_model("billing", "PricingRule").objects.filter(service__in=[r[0] for r in PRICING_RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0004_creditpackage_pricingrule_usagedaily")]

    operations = [migrations.RunPython(add_catalog, remove_catalog)]
