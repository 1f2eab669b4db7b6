"""Reads for tenants and access: principals, tenant lookups scoped to the caller."""

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework.exceptions import NotFound, PermissionDenied

from carenotes.core.cache import cache_get, cache_get_many, cache_set
from tenants.models import ApiToken, Facility, Membership, Tenant
from tenants.principal import Principal, TenantInfo, TokenAuth
from tenants.rls import rls_system
from tenants.tokens import token_digest, token_users

TENANT_INFO_TTL = 300


def principal_token_cache_key(digest: str) -> str:
    return f"auth:token:{digest}"


def principal_user_cache_key(user_id: int) -> str:
    return f"auth:user:{user_id}"


def tenant_info_cache_key(tenant_id: int) -> str:
    return f"tenant:info:{tenant_id}"


def _principal_build(*, user, expires_at=None) -> Principal:
    # Trusted: this lookup decides which tenants the request may see, so it runs before
    # (and across) any tenant scope.
    with rls_system():
        roles = dict(Membership.objects.filter(user_id=user.pk).values_list("tenant_id", "role"))
    return Principal(
        user_id=user.pk,
        username=user.get_username(),
        is_superuser=user.is_superuser,
        is_staff=user.is_staff,
        roles=roles,
        expires_at=expires_at,
    )


def token_auth_get(*, key: str, tenant_id: int | None = None) -> TokenAuth | None:
    """Return the principal of an active, unexpired API key, or None; cached briefly.

    With ``tenant_id`` (the tenant the request names), that tenant's cached facts come back
    in the same Redis round trip, as ``TokenAuth.named_tenant``.
    """
    digest = token_digest(key)
    cache_key = principal_token_cache_key(digest)
    tenant_key = tenant_info_cache_key(tenant_id) if tenant_id is not None else None
    found = cache_get_many([cache_key, tenant_key] if tenant_key else [cache_key])
    cached = found.get(cache_key)
    if cached is not None:
        principal = Principal.from_cache(cached)
    else:
        token = (
            ApiToken.objects.select_related("user")
            .filter(key_digest=digest, revoked_at__isnull=True, user__is_active=True)
            .first()
        )
        if token is None:
            return None
        principal = _principal_build(user=token.user, expires_at=token.expires_at)
        cache_set(cache_key, principal.to_cache(), settings.PRINCIPAL_CACHE_TTL)
    if principal.is_expired(now=timezone.now()):
        return None
    token_users.remember(digest, principal.user_id)
    named = found.get(tenant_key) if tenant_key else None
    return TokenAuth(principal=principal, named_tenant=TenantInfo(**named) if named else None)


def principal_get_for_user(*, user) -> Principal:
    """Return the principal of a (session-)authenticated user; cached briefly."""
    cache_key = principal_user_cache_key(user.pk)
    cached = cache_get(cache_key)
    if cached is not None:
        return Principal.from_cache(cached)
    principal = _principal_build(user=user)
    cache_set(cache_key, principal.to_cache(), settings.PRINCIPAL_CACHE_TTL)
    return principal


def principal_from_request(request) -> Principal:
    """Return the principal behind an authenticated DRF request (token or session)."""
    if isinstance(request.auth, TokenAuth):
        return request.auth.principal
    return principal_get_for_user(user=request.user)


def tenant_get_for_request(*, request, tenant_id: int) -> TenantInfo:
    """Return the tenant the authenticated request may access, else raise 404.

    Uses the facts token authentication fetched with the principal when they are those of
    ``tenant_id`` (TokenAuth.named_tenant), so a warm request costs one Redis round trip.
    """
    auth = request.auth
    named = auth.named_tenant if isinstance(auth, TokenAuth) else None
    return tenant_get_for_principal(
        principal=principal_from_request(request),
        tenant_id=tenant_id,
        prefetched=named if named is not None and named.id == tenant_id else None,
    )


def tenant_info_get(*, tenant_id: int) -> TenantInfo | None:
    """Return a tenant's id, name, time zone and facility ids (cached), or None if absent."""
    cache_key = tenant_info_cache_key(tenant_id)
    cached = cache_get(cache_key)
    if cached is not None:
        return TenantInfo(**cached)
    tenant = Tenant.objects.filter(pk=tenant_id).values("id", "name", "timezone").first()
    if tenant is None:
        return None
    facility_ids = tuple(
        Facility.objects.filter(tenant_id=tenant_id).order_by("id").values_list("id", flat=True)
    )
    info = TenantInfo(facility_ids=facility_ids, **tenant)
    cache_set(cache_key, info.__dict__, TENANT_INFO_TTL)
    return info


def tenant_get_for_principal(
    *, principal: Principal, tenant_id: int, prefetched: TenantInfo | None = None
) -> TenantInfo:
    """Return the tenant if the caller may access it; otherwise raise 404.

    A tenant that does not exist and one the caller is not a member of give the same
    answer, so the API never reveals which tenant ids exist. ``prefetched`` are the
    tenant's cached facts when the caller already has them (they decide no access).
    """
    if principal.can_access(tenant_id):
        info = prefetched or tenant_info_get(tenant_id=tenant_id)
        if info is not None:
            return info
    raise NotFound()


def tenant_list_for_user(*, user) -> QuerySet[Tenant]:
    """Return the tenants a user may see: all for a superuser, else their memberships'."""
    if user.is_superuser:
        return Tenant.objects.all()
    return Tenant.objects.filter(memberships__user_id=user.pk)


def tenant_get_for_member(*, principal: Principal, tenant_id: int) -> TenantInfo:
    """Return the tenant if the caller is a member (any role); for writes made as a member.

    Non-members get the same 404 as ``tenant_get_for_principal``; a superuser who may read
    the tenant but is not a member gets 403, since care records need a member as author.
    """
    info = tenant_get_for_principal(principal=principal, tenant_id=tenant_id)
    if principal.role_in(tenant_id) is None:
        raise PermissionDenied("Only members of the tenant may do this.")
    return info
