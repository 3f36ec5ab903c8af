"""Bearer API-key authentication with a cached key-to-principal lookup.

A request whose data is cached costs no database query: the principal (user
id, username, staff flag, tier) is cached under the key's hash in the
``user_tier`` namespace. Revoking a key evicts that entry after commit.
``last_used_at`` is refreshed on cache misses, so it is accurate to one TTL.
"""

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from ops_center import cache
from ops_center.api import fast_reads
from ops_center.api.keys import PRINCIPAL_NAMESPACE, hash_api_key, principal_part
from orgs.models import ApiKey, User

KEYWORD = "Bearer"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() != KEYWORD.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the header as 'Authorization: Bearer <api key>'.")
        raw_key = header[1].decode(errors="replace")
        return self.principal_for(raw_key)

    def authenticate_header(self, request) -> str:
        return f'{KEYWORD} realm="api"'

    def principal_for(self, raw_key: str):
        key_hash = hash_api_key(raw_key)
        principal = cache.get_value(PRINCIPAL_NAMESPACE, principal_part(key_hash))
        if principal is None:
            principal = self._load_principal(key_hash)
            cache.set_value(PRINCIPAL_NAMESPACE, principal_part(key_hash), value=principal)
        fast_reads.remember_key_owner(key_hash, principal["user_id"])
        return user_from_principal(principal), principal["key_id"]

    def _load_principal(self, key_hash: str) -> dict:
        api_key = (
            ApiKey.objects.select_related("user")
            .filter(key_hash=key_hash, revoked_at__isnull=True, user__is_active=True)
            .first()
        )
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
        user = api_key.user
        return {
            "key_id": api_key.pk,
            "user_id": user.pk,
            "username": user.username,
            "is_staff": user.is_staff,
            "is_superuser": user.is_superuser,
            "tier": user.tier,
        }


def user_from_principal(principal: dict) -> User:
    """An in-memory user built from the cached principal; it is never saved."""
    return User(
        pk=principal["user_id"],
        username=principal["username"],
        is_staff=principal["is_staff"],
        is_superuser=principal["is_superuser"],
        is_active=True,
        tier=principal["tier"],
    )


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <api key>"}
