"""Django admin for patients and care notes: tenant-scoped and fast at millions of notes.

A note's change page shows its body and appends an access audit record; the changelist shows
no body (a test holds it to that) and records nothing.
"""

from http import HTTPStatus
from zoneinfo import ZoneInfo

from django.contrib import admin
from django.db import transaction
from django.db.models import Q

from audit.services import audit_request_read
from carenotes.notes.models import PRIORITY_MAX, PRIORITY_MIN, CareNote, Patient
from carenotes.notes.services import note_changed_on_commit
from tenants.admin_paging import BoundedChangeList, EstimatedCountPaginator
from tenants.admin_scoping import (
    ScopedRelatedFieldListFilter,
    TenantScopedAdmin,
    admin_tenant_ids,
)
from tenants.models import Membership

NOTE_LIST_PER_PAGE = 50
TENANT_FILTER_PARAM = "tenant__id__exact"
# "Show all" is capped too: the count it is judged by is only an estimate.
NOTE_LIST_MAX_SHOW_ALL = 200
# A note's time as its tenant's staff read it: "2025-03-10 09:15 AEDT".
LOCAL_TIME_FORMAT = "%Y-%m-%d %H:%M %Z"
CREATED_AT_UTC_LABEL = "Created at (UTC)"
CREATED_AT_UTC_HELP = "Entered and stored in UTC; the tenant's local time is shown below."


def tenant_local_time(note: CareNote) -> str:
    """Return ``note.created_at`` in its tenant's time zone, with the zone's abbreviation."""
    if note.created_at is None or note.tenant_id is None:
        return "-"
    zone = ZoneInfo(note.tenant.timezone)
    return note.created_at.astimezone(zone).strftime(LOCAL_TIME_FORMAT)


@admin.register(Patient)
class PatientAdmin(TenantScopedAdmin):
    list_display = ["reference", "display_name", "facility", "tenant"]
    list_filter = [
        ("facility", ScopedRelatedFieldListFilter),
        ("tenant", ScopedRelatedFieldListFilter),
    ]
    list_select_related = ["facility", "tenant"]
    search_fields = ["reference", "display_name"]
    autocomplete_fields = ["tenant", "facility"]
    # Served by patient_tenant_ref_uniq (tenant_id, reference).
    ordering = ["tenant_id", "reference"]


class PriorityListFilter(admin.SimpleListFilter):
    """Priority 1-5 from the constants; Django's default would SELECT DISTINCT the table."""

    title = "priority"
    parameter_name = "priority"

    def lookups(self, request, model_admin):
        return [(str(p), str(p)) for p in range(PRIORITY_MIN, PRIORITY_MAX + 1)]

    def queryset(self, request, queryset):
        if self.value() in {str(p) for p in range(PRIORITY_MIN, PRIORITY_MAX + 1)}:
            return queryset.filter(priority=int(self.value()))
        return queryset


@admin.register(CareNote)
class CareNoteAdmin(TenantScopedAdmin):
    # Computed columns, not the foreign keys themselves: Django keeps foreign-key and date
    # cells on one line ("nowrap"), and at 1,400 px the table then scrolled the author
    # column out of view. The author comes early for the same reason.
    list_display = [
        "id",
        "created_at_local",
        "resident",
        "author_name",
        "facility_name",
        "category",
        "priority",
    ]
    list_filter = [
        ("facility", ScopedRelatedFieldListFilter),
        "category",
        PriorityListFilter,
        # Plain gte/lt ranges; date_hierarchy would run a DISTINCT over the dates.
        ("created_at", admin.DateFieldListFilter),
        ("tenant", ScopedRelatedFieldListFilter),
    ]
    # Exact matches only (see get_search_results), never ILIKE over millions of rows.
    search_fields = ["=patient__reference", "=author__username"]
    search_help_text = "Exact patient reference or author username."
    list_select_related = ["patient", "facility", "author", "tenant"]
    autocomplete_fields = ["tenant", "facility", "patient", "author"]
    fields = [
        "tenant",
        "facility",
        "patient",
        "author",
        "category",
        "priority",
        "body",
        "created_at",
        "created_at_local",
    ]
    readonly_fields = ["created_at_local"]
    # Served by carenote_tenant_recent_idx / carenote_facility_recent_idx; other sorts
    # would sort the whole tenant, so columns are not sortable. See get_ordering.
    ordering = ["-created_at", "-id"]
    sortable_by = ()
    list_per_page = NOTE_LIST_PER_PAGE
    list_max_show_all = NOTE_LIST_MAX_SHOW_ALL
    show_full_result_count = False
    # Facet counts are one COUNT per filter choice over the whole filtered table.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator

    @admin.display(description="Created (tenant's time)")
    def created_at_local(self, note: CareNote) -> str:
        return tenant_local_time(note)

    @admin.display(description="Resident")
    def resident(self, note: CareNote) -> str:
        return str(note.patient)

    @admin.display(description="Author")
    def author_name(self, note: CareNote) -> str:
        return note.author.get_username()

    @admin.display(description="Facility")
    def facility_name(self, note: CareNote) -> str:
        return str(note.facility)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "created_at":
            kwargs.update(label=CREATED_AT_UTC_LABEL, help_text=CREATED_AT_UTC_HELP)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_changelist(self, request, **kwargs):
        return BoundedChangeList

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        # A page showing the note's body: its form (GET, or a POST answered with errors).
        if response.status_code == HTTPStatus.OK:
            note = response.context_data["original"]
            audit_request_read(request, tenant_id=note.tenant_id, note_ids=[note.pk])
        return response

    def get_ordering(self, request):
        # Every created_at index leads with tenant_id: across all tenants (a superuser's
        # unfiltered list) only the primary key is ordered, so show newest-recorded first.
        if admin_tenant_ids(request.user) is None and not request.GET.get(TENANT_FILTER_PARAM):
            return ["-pk"]
        return self.ordering

    def get_search_results(self, request, queryset, search_term):
        # Resolve the term to (tenant, patient) and (tenant, author) pairs first, so the
        # indexes that lead with tenant_id can serve the note lookup.
        term = search_term.strip()
        if not term:
            return queryset, False
        patients = Patient.objects.filter(reference=term)
        author_tenants = Membership.objects.filter(user__username=term)
        by_patient = Q(tenant_id__in=patients.values("tenant_id"), patient__in=patients)
        by_author = Q(
            tenant_id__in=author_tenants.values("tenant_id"),
            author_id__in=author_tenants.values("user_id"),
        )
        return queryset.filter(by_patient | by_author), False

    def _invalidate_stats(self, note: CareNote) -> None:
        note_changed_on_commit(
            tenant_id=note.tenant_id,
            timezone_name=note.tenant.timezone,
            created_at=note.created_at,
        )

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            if change:
                # The note may move to another day: the old day's stats are stale too.
                before = CareNote.objects.select_related("tenant").get(pk=obj.pk)
                self._invalidate_stats(before)
            super().save_model(request, obj, form, change)
            self._invalidate_stats(obj)

    def delete_model(self, request, obj):
        with transaction.atomic():
            self._invalidate_stats(obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for note in queryset.select_related("tenant"):
                self._invalidate_stats(note)
            super().delete_queryset(request, queryset)
