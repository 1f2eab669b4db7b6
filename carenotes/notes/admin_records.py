"""Django admin of care records that cannot be silently rewritten: amending a note through the
service, a note's amendments and its trigger-written change history shown read-only beside it."""

from http import HTTPStatus

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils.html import format_html

from audit.services import audit_request_read
from carenotes.core.colocation import colocated
from carenotes.notes.models import CareNote, CareNoteAmendment, CareNoteEvent
from carenotes.notes.services import note_amend, note_amendment_errors
from tenants.admin_scoping import TenantScopedAdmin

AMEND_LINK_TEXT = "Amend this note"
NOTE_PARAM = "note"
AMENDMENT_FIELDS = ["note", "reason", "category", "priority", "body"]
AMENDMENT_COLUMNS = [
    "created_at",
    "author",
    "reason",
    "previous_category",
    "category",
    "previous_priority",
    "priority",
    "previous_body",
    "body",
]


class AuditedChangeViewMixin:
    """Model admin mixin: a change page answered 200 shows a note's body (its form, or a POST
    answered with errors), so it appends an access audit record naming that note."""

    def audited_note_id(self, obj) -> int:
        """Return the id of the note whose body the change page of ``obj`` shows."""
        return obj.pk

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if response.status_code == HTTPStatus.OK:
            obj = response.context_data["original"]
            audit_request_read(
                request, tenant_id=obj.tenant_id, note_ids=[self.audited_note_id(obj)]
            )
        return response


def api_errors_to_form(form: forms.Form, detail: dict) -> None:
    """Add a service's ValidationError detail (field -> messages) to ``form``'s errors."""
    for field, messages in detail.items():
        for message in messages:
            form.add_error(field if field in form.fields else None, str(message))


def amend_url(note: CareNote) -> str:
    """Return the admin URL of the form that amends ``note``."""
    url = reverse("admin:carenotes_carenoteamendment_add")
    return f"{url}?{NOTE_PARAM}={note.pk}"


class ReadOnlyInline(admin.TabularInline):
    """Rows shown beside a note, never added, changed or deleted here; seen by whoever may
    see the note (its tenant's admins, superusers): the parent's view checks the scope."""

    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("carenotes.view_carenote")


class AmendmentInline(ReadOnlyInline):
    model = CareNoteAmendment
    fk_name = "note"
    fields = AMENDMENT_COLUMNS
    readonly_fields = AMENDMENT_COLUMNS
    ordering = ["created_at", "id"]
    verbose_name_plural = "Amendments (each keeps the values before it)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author")


class HistoryInline(ReadOnlyInline):
    """The change history the database's triggers wrote: every UPDATE (before and after) and
    DELETE, by whatever path, with who and why."""

    model = CareNoteEvent
    fk_name = "pgh_obj"
    fields = [
        "pgh_created_at",
        "pgh_label",
        "changed_by",
        "category",
        "priority",
        "body",
        "created_at",
        "facility",
        "patient",
        "author",
    ]
    readonly_fields = fields
    ordering = ["pgh_id"]
    verbose_name = "change"
    verbose_name_plural = "Change history (written by the database)"

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("facility", "patient", "author")
        return colocated(queryset, "facility", "patient")

    @admin.display(description="Changed by, why")
    def changed_by(self, event: CareNoteEvent) -> str:
        return history_context_text(event.pgh_context)


def history_context_text(context: dict | None) -> str:
    """Return who made a change and why, from a history row's context, for people to read."""
    if not context:
        return "No application context (a direct database change)"
    parts = []
    user_id = context.get("user")
    if user_id is not None:
        user = get_user_model().objects.filter(pk=user_id).first()
        parts.append(user.get_username() if user else f"user {user_id}")
    for key in ("amendment_reason", "repair_reason"):
        if context.get(key):
            parts.append(f"{key.replace('_', ' ')}: {context[key]}")
    if context.get("url"):
        parts.append(f"via {context['url']}")
    return "; ".join(parts)


class AmendmentForm(forms.ModelForm):
    """The amend form: the note (given in the URL from its page), why, and the new values.

    Checked by the service's own rules, so the admin accepts exactly what the API does.
    """

    class Meta:
        model = CareNoteAmendment
        fields = AMENDMENT_FIELDS

    def clean(self):
        cleaned = super().clean()
        note = cleaned.get("note")
        if note is not None and not self.errors:
            detail = note_amendment_errors(
                note=note,
                reason=cleaned.get("reason", ""),
                category=cleaned.get("category", ""),
                priority=cleaned.get("priority") or 0,
                body=cleaned.get("body", ""),
            )
            api_errors_to_form(self, detail)
        return cleaned


@admin.register(CareNoteAmendment)
class CareNoteAmendmentAdmin(AuditedChangeViewMixin, TenantScopedAdmin):
    """Amendments: added through ``note_amend`` (the note row takes the new values), never
    changed or deleted here, by anyone. Pages that show a note's body are audited reads."""

    form = AmendmentForm
    list_display = ["id", "note_link", "created_at", "author", "reason", "category", "priority"]
    list_select_related = ["author"]
    raw_id_fields = ["note"]
    ordering = ["-id"]

    def get_fields(self, request, obj=None):
        return AMENDMENT_FIELDS if obj is None else ["tenant", "note", *AMENDMENT_COLUMNS]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def get_changeform_initial_data(self, request):
        # The note's current values, so that only what is corrected needs typing.
        initial = super().get_changeform_initial_data(request)
        note_id = request.GET.get(NOTE_PARAM, "")
        note = None
        if note_id.isdigit():
            note = self.scope_queryset(request, CareNote.objects.all()).filter(pk=note_id).first()
        if note is not None:
            initial.update(category=note.category, priority=note.priority, body=note.body)
            audit_request_read(request, tenant_id=note.tenant_id, note_ids=[note.pk])
        return initial

    def audited_note_id(self, obj: CareNoteAmendment) -> int:
        return obj.note_id

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Note")
    def note_link(self, amendment: CareNoteAmendment) -> str:
        url = reverse("admin:carenotes_carenote_change", args=[amendment.note_id])
        return format_html('<a href="{}">{}</a>', url, amendment.note_id)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        note = data["note"]
        amendment = note_amend(
            tenant=note.tenant,
            author=request.user,
            note_id=note.pk,
            reason=data["reason"],
            category=data["category"],
            priority=data["priority"],
            body=data["body"],
        )
        obj.pk = amendment.pk

    def response_add(self, request, obj, post_url_continue=None):
        # Back to the note, where the amendment is listed beside it.
        response = super().response_add(request, obj, post_url_continue)
        if "_addanother" not in request.POST and "_continue" not in request.POST:
            response["Location"] = reverse("admin:carenotes_carenote_change", args=[obj.note_id])
        return response
