"""Django admin for patients and care notes."""

from django.contrib import admin

from carenotes.models import CareNote, Patient


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ["reference", "display_name", "facility", "tenant"]
    list_filter = ["tenant"]
    list_select_related = ["facility", "tenant"]
    search_fields = ["reference", "display_name"]
    raw_id_fields = ["tenant", "facility"]


@admin.register(CareNote)
class CareNoteAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "category", "priority", "patient", "facility", "author"]
    list_filter = ["category", "priority"]
    list_select_related = ["patient", "facility", "author"]
    raw_id_fields = ["tenant", "facility", "patient", "author"]
    show_full_result_count = False
