"""Who may do what under /org-billing/organizations/{org_id}/.

| Role                 | Access                                              |
|----------------------|-----------------------------------------------------|
| owner or admin       | everything under their own org                      |
| member               | the org's subscription and their own allocation     |
| staff                | read everything                                     |
| anyone else          | 404: the org's existence is not revealed            |
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from orgs.errors import OrgNotFound
from orgs.models import Membership
from orgs.selectors import membership_role

ADMIN_ROLES = (Membership.Role.OWNER, Membership.Role.ADMIN)


class _OrgPermission(BasePermission):
    member_may_read = False

    def has_permission(self, request, view) -> bool:
        if not request.user.is_authenticated:
            return False  # DRF answers 401
        org_id = view.kwargs["org_id"]
        role = membership_role(user_id=request.user.pk, org_id=org_id)
        if role is None and not request.user.is_staff:
            raise OrgNotFound(details={"org_id": org_id})  # staff see every org anyway: a 403 hides nothing
        if request.method in SAFE_METHODS:
            return self.allows_read(role=role, is_staff=request.user.is_staff)
        return role in ADMIN_ROLES

    @classmethod
    def allows_read(cls, *, role: str | None, is_staff: bool) -> bool:
        """Whether a GET passes, from the role alone (also ops_center.api.fast_reads'); False may be a 403 or 404."""
        return is_staff or role in ADMIN_ROLES or (cls.member_may_read and role is not None)


class IsOrgAdmin(_OrgPermission):
    """Owners and admins; staff may read."""

    message = "Only the organization's owners and admins may do this."


class IsOrgMember(_OrgPermission):
    """Any member may read; staff may read."""

    member_may_read = True
    message = "Members may only read."
