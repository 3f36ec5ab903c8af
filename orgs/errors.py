"""Errors about organizations, shared by every app that serves org URLs."""

from rest_framework import status

from ops_center.api.exceptions import ApiError


class OrgNotFound(ApiError):
    """Also raised for orgs the caller is not in, so their existence is not revealed."""

    status_code = status.HTTP_404_NOT_FOUND
    default_code = "org_not_found"
    default_detail = "No such organization."
