"""DRF authentication by API token, served from a short-lived Redis cache of principals."""

from django.contrib.auth import get_user_model
from rest_framework import authentication, exceptions

from tenants.selectors import principal_get_for_token

KEYWORD = "Token"
TENANT_PARAM = "tenant_id"
MAX_ID_DIGITS = 19  # PostgreSQL bigint


def _named_tenant_id(request) -> int | None:
    """Return the ``tenant_id`` query parameter when it looks like an id (validated later)."""
    raw = request.query_params.get(TENANT_PARAM, "")
    if raw.isascii() and raw.isdigit() and len(raw) <= MAX_ID_DIGITS:
        return int(raw)
    return None


class TokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Token <key>``; the key is looked up by its SHA-256 digest.

    On a cache hit no database query is made: the user is rebuilt from the cached
    principal (an unsaved instance carrying ``.principal``).
    """

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != KEYWORD.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid token header: expected 'Authorization: Token <key>'."
            )
        try:
            key = header[1].decode("ascii")
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token header: non-ASCII key.") from exc
        principal = principal_get_for_token(key=key, tenant_id=_named_tenant_id(request))
        if principal is None:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired token.")
        user = get_user_model()(
            pk=principal.user_id,
            username=principal.username,
            is_superuser=principal.is_superuser,
            is_staff=principal.is_staff,
            is_active=True,
        )
        user.principal = principal
        return user, principal

    def authenticate_header(self, request) -> str:
        return KEYWORD
