"""Django admin for the access audit: read-only, each tenant admin sees their tenants' reads."""

from django.contrib import admin

from audit.models import ReadRecord
from tenants.admin_paging import BoundedChangeList, EstimatedCountPaginator
from tenants.admin_scoping import ScopedRelatedFieldListFilter, TenantScopedAdmin

READ_LIST_PER_PAGE = 50
READ_LIST_MAX_SHOW_ALL = 200
# The routes that write records (a test holds the audited views to this list); a filter
# with fixed choices, where Django's default would SELECT DISTINCT over the whole table.
AUDITED_ROUTES = (
    "note-list",
    "note-detail",
    "dashboard:tenant",
    "dashboard:high-priority",
    "dashboard:export-counts",
    "dashboard:export-high-priority",
    "admin:carenotes_carenote_change",
    "admin:carenotes_carenoteamendment_change",
    "admin:carenotes_carenoteamendment_add",
)


class RouteListFilter(admin.SimpleListFilter):
    """The audited routes, from AUDITED_ROUTES."""

    title = "route"
    parameter_name = "route"

    def lookups(self, request, model_admin):
        return [(route, route) for route in AUDITED_ROUTES]

    def queryset(self, request, queryset):
        if self.value() in AUDITED_ROUTES:
            return queryset.filter(route=self.value())
        return queryset


@admin.register(ReadRecord)
class ReadRecordAdmin(TenantScopedAdmin):
    """Audit records to browse, never to add, change or delete (nobody may, superusers too)."""

    list_display = ["id", "read_at", "username", "route", "note_count", "tenant"]
    list_filter = [
        RouteListFilter,
        ("read_at", admin.DateFieldListFilter),
        ("tenant", ScopedRelatedFieldListFilter),
    ]
    list_select_related = ["tenant"]
    fields = [
        "read_at",
        "tenant",
        "user_id",
        "username",
        "route",
        "filters",
        "note_count",
        "note_ids",
        "request_id",
    ]
    readonly_fields = fields
    # Served by audit_read_tenant_recent_idx (tenant_id, id DESC); ids grow with read_at.
    ordering = ["-id"]
    sortable_by = ()
    actions = None
    list_per_page = READ_LIST_PER_PAGE
    list_max_show_all = READ_LIST_MAX_SHOW_ALL
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator

    def get_changelist(self, request, **kwargs):
        return BoundedChangeList

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
