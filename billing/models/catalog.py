"""What can be bought and what usage costs: data that staff manage in the admin."""

from django.db import models
from django.db.models import Q

from billing.money import CURRENCY_PATTERN, credit_field


class CreditPackage(models.Model):
    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    credits = credit_field()
    price_minor = models.BigIntegerField(help_text="Price in minor units (cents).")
    currency = models.CharField(max_length=3, default="USD")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["price_minor"]
        constraints = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="credit_package_credits_positive"),
            models.CheckConstraint(condition=Q(price_minor__gte=0), name="credit_package_price_non_negative"),
            models.CheckConstraint(
                condition=Q(currency__regex=CURRENCY_PATTERN), name="credit_package_currency_iso_4217"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class PricingRule(models.Model):
    """Turns units of a metered service (tokens, images, seconds) into credits."""

    service = models.SlugField(max_length=60, unique=True)
    description = models.CharField(max_length=200, blank=True)
    credits_per_unit = credit_field()
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["service"]
        constraints = [
            models.CheckConstraint(condition=Q(credits_per_unit__gte=0), name="pricing_rule_rate_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.service}: {self.credits_per_unit}/unit"
