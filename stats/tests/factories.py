"""Test helpers for the analytics: tenant facts as the API sees them."""

from tenants.models import Facility, Tenant
from tenants.principal import TenantInfo


def tenant_info_of(tenant: Tenant) -> TenantInfo:
    """Return the TenantInfo the API would build for ``tenant`` (read fresh, not cached)."""
    facility_ids = tuple(
        Facility.objects.filter(tenant=tenant).order_by("id").values_list("id", flat=True)
    )
    return TenantInfo(
        id=tenant.pk, name=tenant.name, timezone=tenant.timezone, facility_ids=facility_ids
    )
