"""Django admin for tenants, facilities, memberships and API tokens."""

from django.contrib import admin

from tenants.models import ApiToken, Facility, Membership, Tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "slug", "timezone", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Facility)
class FacilityAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "tenant"]
    list_filter = ["tenant"]
    list_select_related = ["tenant"]
    search_fields = ["name"]
    autocomplete_fields = ["tenant"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    list_select_related = ["user", "tenant"]
    search_fields = ["user__username"]
    autocomplete_fields = ["user", "tenant"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["key_prefix", "user", "name", "created_at", "expires_at", "revoked_at"]
    list_select_related = ["user"]
    search_fields = ["user__username", "key_prefix", "name"]
    readonly_fields = ["key_prefix", "key_digest", "created_at"]
    autocomplete_fields = ["user"]
