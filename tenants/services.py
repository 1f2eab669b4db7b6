"""Writes for tenants and access: tenants, facilities, memberships and API tokens."""

import secrets
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from tenants.cache import cache_delete_many
from tenants.models import ApiToken, Facility, Membership, Tenant
from tenants.selectors import (
    principal_token_cache_key,
    principal_user_cache_key,
    tenant_info_cache_key,
    token_digest,
)

API_KEY_BYTES = 20  # 40 hex characters, the shape clients know from DRF tokens
API_KEY_PREFIX_LENGTH = 8


def principal_cache_invalidate(*, user_id: int) -> None:
    """Drop every cached principal of a user, so access changes apply on the next request."""
    digests = ApiToken.objects.filter(user_id=user_id).values_list("key_digest", flat=True)
    keys = [principal_user_cache_key(user_id)]
    keys += [principal_token_cache_key(digest) for digest in digests]
    cache_delete_many(keys)


def tenant_info_cache_invalidate(*, tenant_id: int) -> None:
    """Drop the cached tenant facts (time zone, facility ids)."""
    cache_delete_many([tenant_info_cache_key(tenant_id)])


def tenant_create(*, name: str, slug: str, timezone_name: str = "UTC") -> Tenant:
    """Create a tenant after validating its fields."""
    tenant = Tenant(name=name, slug=slug, timezone=timezone_name)
    tenant.full_clean()
    tenant.save()
    return tenant


def facility_create(*, tenant: Tenant, name: str) -> Facility:
    """Create a facility of ``tenant``."""
    return Facility.objects.create(tenant=tenant, name=name)


def membership_grant(*, user, tenant: Tenant, role: str) -> Membership:
    """Give ``user`` ``role`` in ``tenant`` (updating an existing membership)."""
    membership, _ = Membership.objects.update_or_create(
        user=user, tenant=tenant, defaults={"role": role}
    )
    return membership


def membership_revoke(*, user, tenant: Tenant) -> None:
    """Remove ``user`` from ``tenant``; cached principals are dropped by the model signal."""
    Membership.objects.filter(user=user, tenant=tenant).delete()


def api_token_create(
    *, user, name: str = "", expires_at: datetime | None = None, key: str | None = None
) -> tuple[ApiToken, str]:
    """Create an API token and return it with its key; the key is never stored or shown again.

    ``key`` lets a reproducible seed choose the key; normally it is random.
    """
    key = key or secrets.token_hex(API_KEY_BYTES)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        key_prefix=key[:API_KEY_PREFIX_LENGTH],
        key_digest=token_digest(key),
        expires_at=expires_at,
    )
    return token, key


@transaction.atomic
def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke a token; it stops authenticating on the next request."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
