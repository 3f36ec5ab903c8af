"""Reads for identity and tenancy."""

from ops_center import cache
from orgs.models import Membership

NOT_A_MEMBER = ""


def role_cache_part(user_id: int) -> str:
    return f"role_{cache.user_part(user_id)}"


def membership_role(*, user_id: int, org_id: int) -> str | None:
    """The caller's role in an org, or None. Cached: every org request asks it first."""
    role, _ = cache.get_or_set(
        "org_data",
        cache.org_part(org_id),
        role_cache_part(user_id),
        compute=lambda: Membership.objects.filter(user_id=user_id, org_id=org_id).values_list("role", flat=True).first()
        or NOT_A_MEMBER,
    )
    return role or None
