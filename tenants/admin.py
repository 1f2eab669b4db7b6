"""Django admin for tenants, facilities, memberships, API tokens and users, tenant-scoped.

Tenant admins (staff through an ``admin`` membership) see only their tenants' rows; they may
edit their tenants and facilities, and grant or revoke memberships of their tenants (any
role, including ``admin``) to users who already belong to one of their tenants. Users are
read-only for them; creating users and API tokens is for superusers.
"""

from datetime import UTC

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from tenants.admin_scoping import (
    ScopedRelatedFieldListFilter,
    TenantScopedAdmin,
    admin_tenant_ids,
    tenant_labelled_autocomplete,
)
from tenants.models import ApiToken, Facility, Membership, Tenant
from tenants.services import membership_grant, membership_revoke

User = get_user_model()

# Autocomplete results name their tenant for users who see several (admin_scoping.py). Set
# here, at autodiscovery, before carenotes.urls builds the site's URLs from this attribute.
admin.site.autocomplete_view = tenant_labelled_autocomplete

UTC_TIME_FORMAT = "%Y-%m-%d %H:%M UTC"


def utc_column(field: str, description: str):
    """Return a change-list column showing ``field`` (a datetime) in UTC, labelled as such."""

    @admin.display(description=description, ordering=field)
    def column(obj) -> str:
        value = getattr(obj, field)
        return "-" if value is None else value.astimezone(UTC).strftime(UTC_TIME_FORMAT)

    column.__name__ = f"{field}_utc"
    return column


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    tenant_lookup = "id"
    list_display = ["id", "name", "slug", "timezone", utc_column("created_at", "Created")]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    ordering = ["name"]

    def tenant_ids_of(self, obj) -> set[int]:
        return {obj.pk}


@admin.register(Facility)
class FacilityAdmin(TenantScopedAdmin):
    list_display = ["id", "name", "tenant"]
    list_filter = [("tenant", ScopedRelatedFieldListFilter)]
    list_select_related = ["tenant"]
    search_fields = ["name"]
    autocomplete_fields = ["tenant"]
    ordering = ["tenant_id", "name"]


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    list_display = ["id", "user", "tenant", "role", utc_column("created_at", "Granted")]
    list_filter = ["role", ("tenant", ScopedRelatedFieldListFilter)]
    list_select_related = ["user", "tenant"]
    search_fields = ["user__username"]
    autocomplete_fields = ["user", "tenant"]
    ordering = ["tenant_id", "user_id"]

    def get_readonly_fields(self, request, obj=None):
        # Moving a membership to another user or tenant is a revoke plus a grant.
        return ["user", "tenant"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        # Through the service, so that granting admin makes the user staff (and back).
        saved = membership_grant(user=obj.user, tenant=obj.tenant, role=obj.role)
        obj.pk, obj.created_at = saved.pk, saved.created_at

    def delete_model(self, request, obj):
        membership_revoke(user=obj.user, tenant=obj.tenant)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("user", "tenant"):
            membership_revoke(user=membership.user, tenant=membership.tenant)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "key_prefix",
        "user",
        "name",
        utc_column("created_at", "Created"),
        utc_column("expires_at", "Expires"),
        utc_column("revoked_at", "Revoked"),
    ]
    list_select_related = ["user"]
    search_fields = ["user__username", "key_prefix", "name"]
    readonly_fields = ["key_prefix", "key_digest", "created_at"]
    autocomplete_fields = ["user"]


admin.site.unregister(User)


@admin.register(User)
class ScopedUserAdmin(TenantScopedAdmin, UserAdmin):
    """Users; a tenant admin sees (read-only) the users who belong to one of their tenants."""

    def scope_queryset(self, request, queryset):
        tenant_ids = admin_tenant_ids(request.user)
        if tenant_ids is None:
            return queryset
        # A subquery, not a join: a user in two of the tenants must not appear twice.
        members = Membership.objects.filter(tenant_id__in=tenant_ids).values("user_id")
        return queryset.filter(pk__in=members)

    def tenant_ids_of(self, obj) -> set[int]:
        return set(obj.memberships.values_list("tenant_id", flat=True))
