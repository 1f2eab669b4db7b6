"""DRF authentication by API token, served from a short-lived Redis cache of principals."""

from django.contrib.auth import get_user_model
from rest_framework import authentication, exceptions

from carenotes.core.auth_throttle import auth_failure_count, auth_failures_check
from carenotes.core.params import TENANT_PARAM, id_or_none
from carenotes.core.request_state import request_state
from tenants.principal import TokenAuth
from tenants.selectors import token_auth_get
from tenants.tokens import TOKEN_KEYWORD, TokenHeaderError, token_digest, token_key_parse


class TokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Token <key>``; the key is looked up by its SHA-256 digest.

    On a cache hit no database query is made: the user is rebuilt from the cached
    principal (an unsaved instance carrying ``.principal``). ``request.auth`` is a
    ``tenants.principal.TokenAuth``: the principal and, fetched in the same round trip, the
    cached facts of the tenant the ``tenant_id`` query parameter names (see
    ``tenants.selectors.tenant_get_for_request``). A key the stats warm-hit path already
    found valid in this request (RequestState.token_lookup: the same cached principal and
    facts, read moments before) is not read from Redis again.
    """

    def authenticate(self, request):
        try:
            key = token_key_parse(request.META.get("HTTP_AUTHORIZATION", ""))
        except TokenHeaderError as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        if key is None:
            return None
        # Token guessing is limited per address, before the lookup (429 once over budget).
        failures = auth_failures_check(request)
        auth = _looked_up(request, key=key)
        if auth is None:
            named_tenant_id = id_or_none(request.query_params.get(TENANT_PARAM, ""))
            auth = token_auth_get(key=key, tenant_id=named_tenant_id)
        if auth is None:
            auth_failure_count(failures)
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired token.")
        principal = auth.principal
        user = get_user_model()(
            pk=principal.user_id,
            username=principal.username,
            is_superuser=principal.is_superuser,
            is_staff=principal.is_staff,
            is_active=True,
        )
        user.principal = principal
        return user, auth

    def authenticate_header(self, request) -> str:
        return TOKEN_KEYWORD


def _looked_up(request, *, key: str) -> TokenAuth | None:
    """Return what this request's earlier lookup of ``key`` authenticated, else None."""
    lookup = request_state(request).token_lookup
    if lookup is None or lookup.digest != token_digest(key):
        return None
    return lookup.auth
