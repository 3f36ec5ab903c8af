"""Who manages an org's webhooks: its owners and admins, and staff (who may write here too).

Members get 403, anyone else 404 (the org's existence is not revealed), as in
orgs.api.permissions.IsOrgAdmin, which this extends with staff writes.
"""

from orgs.api.permissions import IsOrgAdmin
from orgs.errors import OrgNotFound
from orgs.models import Organization


class IsOrgAdminOrStaff(IsOrgAdmin):
    message = "Only the organization's owners and admins, and staff, may manage its webhooks and alerts."

    def has_permission(self, request, view) -> bool:
        if request.user.is_authenticated and request.user.is_staff:
            org_id = view.kwargs["org_id"]
            if not Organization.objects.filter(pk=org_id).exists():
                raise OrgNotFound(details={"org_id": org_id})
            return True
        return super().has_permission(request, view)
