"""Writes for tenants and access: tenants, facilities, memberships and API tokens."""

import secrets
from datetime import datetime

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.utils import timezone

from carenotes.core.cache import cache_delete_many
from tenants.models import ApiToken, Facility, Membership, Role, Tenant
from tenants.rls import rls_system
from tenants.selectors import (
    principal_token_cache_key,
    principal_user_cache_key,
    tenant_info_cache_key,
)
from tenants.tokens import token_digest

API_KEY_BYTES = 20  # 40 hex characters, the shape clients know from DRF tokens
API_KEY_PREFIX_LENGTH = 8
# Created with its permissions by migration tenants/0002_tenant_admin_group; notes are amended,
# never changed, since carenotes/0008_tenant_admins_amend_notes.
TENANT_ADMIN_GROUP = "Tenant admin"
# What a tenant admin may do in the Django admin (always inside their own tenants).
TENANT_ADMIN_PERMISSIONS = (
    "auth.view_user",
    "tenants.view_tenant",
    "tenants.change_tenant",
    "tenants.view_facility",
    "tenants.add_facility",
    "tenants.change_facility",
    "tenants.view_membership",
    "tenants.add_membership",
    "tenants.change_membership",
    "tenants.delete_membership",
    "carenotes.view_patient",
    "carenotes.add_patient",
    "carenotes.change_patient",
    "carenotes.view_carenote",
    "carenotes.add_carenote",
    "carenotes.view_carenoteamendment",
    "carenotes.add_carenoteamendment",
    # Read-only: audit records are never added, changed or deleted in the admin (audit 0003).
    "audit.view_readrecord",
)


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


def tenant_admin_group_get() -> Group:
    """Return the tenant-admin group, recreating it with its permissions if it was deleted.

    Migration tenants/0002 creates it; a flushed database (transactional tests) or a
    superuser's slip in the admin must not leave new tenant admins without permissions.
    """
    group, created = Group.objects.get_or_create(name=TENANT_ADMIN_GROUP)
    if created:
        for dotted in TENANT_ADMIN_PERMISSIONS:
            app_label, codename = dotted.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    return group


def admin_access_sync(*, user) -> None:
    """Make ``user`` staff in the tenant-admin group iff they administer at least one tenant.

    Staff status given for other reasons (no group membership) is left alone; superusers
    keep staff status.
    """
    group = tenant_admin_group_get()
    # Across all tenants: a tenant admin editing one membership must not see the user's
    # admin roles elsewhere as absent (row-level security would hide them).
    with rls_system():
        administers = Membership.objects.filter(user_id=user.pk, role=Role.ADMIN).exists()
    in_group = user.groups.filter(pk=group.pk).exists()
    if administers and not in_group:
        user.groups.add(group)
    elif not administers and in_group:
        user.groups.remove(group)
    staff = user.is_staff
    if administers:
        staff = True
    elif in_group and not user.is_superuser:
        staff = False
    if staff != user.is_staff:
        user.is_staff = staff
        user.save(update_fields=["is_staff"])


@transaction.atomic
def membership_grant(*, user, tenant: Tenant, role: str) -> Membership:
    """Give ``user`` ``role`` in ``tenant`` (updating an existing membership).

    Granting ``admin`` gives access to the tenant-scoped Django admin; see
    ``admin_access_sync``.
    """
    membership, _ = Membership.objects.update_or_create(
        user=user, tenant=tenant, defaults={"role": role}
    )
    admin_access_sync(user=user)
    return membership


@transaction.atomic
def membership_revoke(*, user, tenant: Tenant) -> None:
    """Remove ``user`` from ``tenant``; revoking the last admin membership removes staff."""
    Membership.objects.filter(user=user, tenant=tenant).delete()
    admin_access_sync(user=user)


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
