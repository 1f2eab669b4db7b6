"""Django admin for patients and care notes: tenant-scoped, fast at millions of notes, and
recorded notes read-only but for superusers' recorded repairs (amendments: admin_records.py).

A note's change page shows its body and appends an access audit record; the changelist shows
no body (a test holds it to that) and records nothing.
"""

from zoneinfo import ZoneInfo

import pghistory
from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import Q
from django.utils.html import format_html
from rest_framework.exceptions import ValidationError as ApiValidationError

from carenotes.notes.admin_records import (
    AMEND_LINK_TEXT,
    AmendmentInline,
    AuditedChangeViewMixin,
    HistoryInline,
    amend_url,
    api_errors_to_form,
)
from carenotes.notes.models import PRIORITY_MAX, PRIORITY_MIN, CareNote, Patient
from carenotes.notes.services import note_changed_on_commit, note_validate
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
REPAIR_REASON_HELP = (
    "A data repair changes a recorded note in place: say why. The change, you and this reason "
    "are kept in the note's change history."
)
NOTE_FIELDS = [
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


class NoteAddForm(forms.ModelForm):
    """A new note, checked by the same rules as ``POST /api/notes/`` (``note_validate``)."""

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            note_validate(
                tenant=cleaned["tenant"],
                facility_id=cleaned["facility"].pk,
                patient_id=cleaned["patient"].pk,
                category=cleaned["category"],
                priority=cleaned["priority"],
                body=cleaned["body"],
                created_at=cleaned["created_at"],
            )
        except ApiValidationError as exc:
            detail = {key.removesuffix("_id"): value for key, value in exc.detail.items()}
            api_errors_to_form(self, detail)
        return cleaned


class NoteRepairForm(forms.ModelForm):
    """A superuser's data repair of a recorded note: any field, with the reason required."""

    repair_reason = forms.CharField(widget=forms.Textarea, help_text=REPAIR_REASON_HELP)


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
    colocated_relations = ("facility",)
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
class CareNoteAdmin(AuditedChangeViewMixin, TenantScopedAdmin):
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
    colocated_relations = ("patient", "facility")
    autocomplete_fields = ["tenant", "facility", "patient", "author"]
    readonly_fields = ["created_at_local", "amend"]
    # A recorded note is never changed in place by tenant staff: they see it read-only, with
    # its amendments and change history, and amend it (CareNoteAmendmentAdmin). Superusers
    # may repair data; each repair needs a reason and lands in the history (triggers).
    inlines = [AmendmentInline, HistoryInline]
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

    @admin.display(description="Correction")
    def amend(self, note: CareNote) -> str:
        if note.pk is None:
            return "-"
        return format_html('<a href="{}">{}</a>', amend_url(note), AMEND_LINK_TEXT)

    def get_readonly_fields(self, request, obj=None):
        # A repair corrects a note within its tenant; moving it to another is not a repair.
        return [*self.readonly_fields, "tenant"] if obj is not None else self.readonly_fields

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return NOTE_FIELDS[:-1]
        if self.has_change_permission(request, obj):
            return [*NOTE_FIELDS, "amend", "repair_reason"]
        return [*NOTE_FIELDS, "amend"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = NoteAddForm
        elif self.has_change_permission(request, obj):
            kwargs["form"] = NoteRepairForm
        return super().get_form(request, obj, change, **kwargs)

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)

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
        reason = form.cleaned_data.get("repair_reason", "")
        with transaction.atomic(), pghistory.context(repair_reason=reason):
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
