"""Identity and tenancy: users, organizations, memberships and API keys."""

import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q


class User(AbstractUser):
    class Tier(models.TextChoices):
        FREE = "free", "Free"
        STARTER = "starter", "Starter"
        PRO = "pro", "Pro"
        ENTERPRISE = "enterprise", "Enterprise"

    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.FREE)

    class Meta(AbstractUser.Meta):  # type: ignore[name-defined]  # django-stubs leave out AbstractUser.Meta
        swappable = "AUTH_USER_MODEL"
        constraints = [
            models.CheckConstraint(
                condition=Q(tier__in=["free", "starter", "pro", "enterprise"]), name="user_tier_known"
            ),
        ]


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    members: "models.ManyToManyField[User, Membership]" = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="organizations"
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    # No single-column indexes: uniq_membership_user_org leads with user_id and
    # idx_membership_org_role with org_id, and each serves those lookups.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "org"], name="uniq_membership_user_org"),
            models.CheckConstraint(condition=Q(role__in=["owner", "admin", "member"]), name="membership_role_known"),
        ]
        indexes = [
            # Member listings of one org (admin review, member usage pages).
            models.Index(fields=["org", "role"], name="idx_membership_org_role"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.org_id} ({self.role})"


API_KEY_PREFIX_LENGTH = 8


def generate_api_key() -> tuple[str, str]:
    """Return (visible prefix, full secret key). The key is shown once, never stored."""
    prefix = secrets.token_hex(API_KEY_PREFIX_LENGTH // 2)
    return prefix, f"oc_{prefix}_{secrets.token_urlsafe(32)}"


class ApiKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=API_KEY_PREFIX_LENGTH, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        indexes = [
            # Admin search by the visible prefix a user reads off their key.
            models.Index(fields=["prefix"], name="idx_api_key_prefix"),
        ]

    def __str__(self) -> str:
        return f"oc_{self.prefix}_…"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
