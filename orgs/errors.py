"""Errors about organizations, shared by every app that serves org URLs."""

from ops_center.errors import NotFound


class OrgNotFound(NotFound):
    """Also raised for orgs the caller is not in, so their existence is not revealed."""

    default_code = "org_not_found"
    default_message = "No such organization."
