"""One precision for every credit amount, and integer minor units for money.

Credits are ``Decimal`` with ``CREDIT_DECIMAL_PLACES`` places everywhere: in
columns, services and JSON (as strings). Currency amounts are integers in minor
units (cents) next to an ISO 4217 code, so no float ever touches money.
"""

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from django.db import models

CREDIT_DECIMAL_PLACES = 4
CREDIT_MAX_DIGITS = 18
CREDIT_QUANTUM = Decimal(1).scaleb(-CREDIT_DECIMAL_PLACES)
# The largest value a credit column holds: 14 integer digits.
CREDIT_MAX_VALUE = Decimal(10) ** (CREDIT_MAX_DIGITS - CREDIT_DECIMAL_PLACES) - CREDIT_QUANTUM
ZERO_CREDITS = Decimal(0).quantize(CREDIT_QUANTUM)
# What every currency column holds: an ISO 4217 code, checked by a constraint on each table.
CURRENCY_PATTERN = r"^[A-Z]{3}$"


def credit_field(**kwargs) -> models.DecimalField:
    kwargs.setdefault("default", ZERO_CREDITS)
    return models.DecimalField(max_digits=CREDIT_MAX_DIGITS, decimal_places=CREDIT_DECIMAL_PLACES, **kwargs)


def to_credits(value) -> Decimal:
    """Quantize a finite number to the credit precision; refuse anything else."""
    if isinstance(value, float):
        raise TypeError("credits are never floats; pass a Decimal, int or str")
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return amount.quantize(CREDIT_QUANTUM, rounding=ROUND_HALF_EVEN)


def credits_from_db(value: Decimal | float | str) -> Decimal:
    """A credit column read by raw SQL: PostgreSQL returns a Decimal, the SQLite quick start a float."""
    return to_credits(str(value))


# Raw SQL that does arithmetic on credit columns must read the same on both databases.
# SQLite binds a Decimal parameter as text and orders any number below any text, so a
# parameter is cast to a number; and it stores these columns as binary floats, so every
# sum is rounded back to the credit precision (on PostgreSQL's numeric(18,4) both are no-ops).
CREDITS_PARAM = "CAST(%s AS NUMERIC)"


def credits_sql(expression: str) -> str:
    """``expression`` rounded to the credit precision, e.g. ``credits_sql("balance + " + CREDITS_PARAM)``."""
    return f"ROUND({expression}, {CREDIT_DECIMAL_PLACES})"


def format_minor_units(amount_minor: int, currency: str) -> str:
    """Render 1999 USD as '19.99 USD' (two-decimal currencies)."""
    return f"{Decimal(amount_minor).scaleb(-2):.2f} {currency}"
