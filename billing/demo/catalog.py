"""What the demo sells: plans, the live credit packages and pricing rules, and names to draw from."""

from dataclasses import dataclass
from decimal import Decimal

from billing.models import CreditPackage, PricingRule
from billing.money import to_credits


@dataclass(frozen=True)
class PlanSpec:
    code: str
    name: str
    price_minor: int
    interval: str
    included_credits: Decimal

    @property
    def tier(self) -> str:
        """Members of an org on this plan get the user tier of the same name."""
        return self.code.split("-")[0]


PLANS = (
    PlanSpec("free", "Free", 0, "month", to_credits(1_000)),
    PlanSpec("starter", "Starter", 2_900, "month", to_credits(10_000)),
    PlanSpec("pro", "Pro", 9_900, "month", to_credits(50_000)),
    PlanSpec("pro-yearly", "Pro (yearly)", 99_000, "year", to_credits(600_000)),
    PlanSpec("enterprise", "Enterprise", 49_900, "month", to_credits(300_000)),
)
# How often each plan is picked for an org, in the order of PLANS.
PLAN_WEIGHTS = (20, 35, 25, 8, 12)
PAID_PLANS = tuple(plan for plan in PLANS if plan.price_minor > 0)


@dataclass(frozen=True)
class Package:
    code: str
    name: str
    credits: Decimal
    price_minor: int
    currency: str


@dataclass(frozen=True)
class Service:
    name: str
    credits_per_unit: Decimal
    min_units: int
    max_units: int


# Request sizes per service, in the pricing rule's unit (1,000 tokens, an image,
# a second of audio), and how common each service is. Services staff add later
# get the defaults.
USAGE_PROFILES = {
    "chat-completion": (1, 8, 55),
    "embedding": (1, 50, 25),
    "image-generation": (1, 4, 5),
    "speech-to-text": (5, 900, 15),
}
DEFAULT_USAGE_PROFILE = (1, 10, 5)


@dataclass(frozen=True)
class Catalog:
    """What the demo buys and spends: the live packages and pricing rules, as the API would."""

    packages: tuple[Package, ...]
    services: tuple[Service, ...]
    service_cum_weights: tuple[int, ...]


def load_catalog() -> Catalog:
    packages = tuple(
        Package(package.code, package.name, package.credits, package.price_minor, package.currency)
        for package in CreditPackage.objects.filter(is_active=True).order_by("credits", "code")
    )
    services, cum_weights, total = [], [], 0
    for rule in PricingRule.objects.filter(is_active=True, credits_per_unit__gt=0).order_by("service"):
        min_units, max_units, weight = USAGE_PROFILES.get(rule.service, DEFAULT_USAGE_PROFILE)
        services.append(Service(rule.service, rule.credits_per_unit, min_units, max_units))
        total += weight
        cum_weights.append(total)
    if not packages or not services:
        raise ValueError(
            "No active credit packages or pricing rules: run `manage.py migrate`, or add them in the admin."
        )
    return Catalog(packages=packages, services=tuple(services), service_cum_weights=tuple(cum_weights))


FIRST_NAMES = (
    "Ada", "Ben", "Chloe", "Dmitri", "Elena", "Farah", "Gabriel", "Hana", "Ivan", "Julia",
    "Kenji", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara",
    "Uma", "Victor", "Wen", "Ximena", "Yusuf", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hughes", "Ito", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi", "Silva", "Tanaka",
)  # fmt: skip
ORG_ADJECTIVES = (
    "Blue", "Bright", "Clear", "Copper", "Crimson", "Golden", "Green", "Hidden", "Iron", "Lunar",
    "Northern", "Quiet", "Rapid", "Silver", "Solar", "Swift", "True", "Vivid", "Wild", "Young",
)  # fmt: skip
ORG_NOUNS = (
    "Anchor", "Beacon", "Bridge", "Canyon", "Cedar", "Delta", "Falcon", "Forge", "Harbor", "Lantern",
    "Maple", "Meadow", "Orbit", "Pine", "Prism", "Ridge", "River", "Summit", "Tide", "Willow",
)  # fmt: skip
ORG_SUFFIXES = ("Labs", "Systems", "Analytics", "Studio", "Works", "Health", "Logistics", "AI", "Media", "Bank")
