"""Who may see a tenant's dashboard: its managers and admins, and superusers."""

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework.exceptions import NotFound

from carenotes.core.params import BIGINT_MAX
from tenants.models import Role, Tenant
from tenants.principal import Principal, TenantInfo
from tenants.selectors import tenant_get_for_principal, tenant_list_for_user

# The roles that see a tenant's dashboard (and its attention list); carers do not.
DASHBOARD_ROLES = frozenset({Role.ADMIN.value, Role.MANAGER.value})
CARER_REFUSED = (
    "The dashboard is for the managers and admins of a tenant; your role here is {role}. "
    "Ask an admin of the tenant for the manager role if you need it."
)


@dataclass(frozen=True)
class DashboardAccess:
    """A caller allowed to see one tenant's dashboard, and what else they may do there."""

    principal: Principal
    tenant: TenantInfo

    @property
    def role(self) -> str | None:
        return self.principal.role_in(self.tenant.id)

    @property
    def is_tenant_admin(self) -> bool:
        """True when the caller administers the tenant (admin role or superuser)."""
        return self.principal.is_superuser or self.role == Role.ADMIN.value


def may_see_dashboard(*, principal: Principal, tenant_id: int) -> bool:
    """Return True when ``principal`` may see the dashboard of ``tenant_id``."""
    return principal.is_superuser or principal.role_in(tenant_id) in DASHBOARD_ROLES


def may_see_any_dashboard(principal: Principal) -> bool:
    """Return True when ``principal`` may see the dashboard of at least one tenant."""
    return principal.is_superuser or any(
        role in DASHBOARD_ROLES for role in principal.roles.values()
    )


def dashboard_access_get(*, principal: Principal, tenant_id: int) -> DashboardAccess:
    """Return the caller's access to the tenant's dashboard.

    Raises Http404 when the caller may not read the tenant at all (the same answer as for a
    tenant that does not exist) and PermissionDenied for a member whose role is carer.
    """
    if not 1 <= tenant_id <= BIGINT_MAX:  # the URL's <int:> takes any size; ids are bigint
        raise Http404("No such tenant.")
    try:
        tenant = tenant_get_for_principal(principal=principal, tenant_id=tenant_id)
    except NotFound:
        raise Http404("No such tenant.") from None
    if not may_see_dashboard(principal=principal, tenant_id=tenant_id):
        raise PermissionDenied(CARER_REFUSED.format(role=principal.role_in(tenant_id)))
    return DashboardAccess(principal=principal, tenant=tenant)


def dashboard_tenant_list(*, user, principal: Principal) -> list[Tenant]:
    """Return the tenants whose dashboard the user may see: every tenant for a superuser."""
    tenants = tenant_list_for_user(user=user).order_by("name", "id")
    if principal.is_superuser:
        return list(tenants)
    ids = [tenant_id for tenant_id, role in principal.roles.items() if role in DASHBOARD_ROLES]
    return list(tenants.filter(pk__in=ids))
