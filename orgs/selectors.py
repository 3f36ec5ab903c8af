"""Reads for identity and tenancy."""

from ops_center import cache
from orgs.models import Membership


def role_cache_part(*, user_id: int) -> str:
    return f"role_{cache.user_part(user_id)}"


def role_key(*, user_id: int, org_id: int) -> tuple:
    return ("org_data", cache.org_part(org_id), role_cache_part(user_id=user_id))


def membership_role(*, user_id: int, org_id: int) -> str | None:
    """The caller's role in an org, or None. Cached (a cached None is a hit): every org request asks it first."""
    memberships = Membership.objects.filter(user_id=user_id, org_id=org_id)
    role, _ = cache.get_or_set(
        *role_key(user_id=user_id, org_id=org_id), compute=lambda: memberships.values_list("role", flat=True).first()
    )
    return role
