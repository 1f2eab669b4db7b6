"""Routes of the care-notes API: notes, their amendments, and residents."""

from django.urls import path

from carenotes.notes.api.amendments import NoteAmendmentCreateView, NoteDetailView
from carenotes.notes.api.residents import ResidentDetailView, ResidentListView
from carenotes.notes.api.views import NoteListCreateView

urlpatterns = [
    path("notes/", NoteListCreateView.as_view(), name="note-list"),
    path("notes/<int:note_id>/", NoteDetailView.as_view(), name="note-detail"),
    path(
        "notes/<int:note_id>/amendments/",
        NoteAmendmentCreateView.as_view(),
        name="note-amendment-create",
    ),
    path("residents/", ResidentListView.as_view(), name="resident-list"),
    path("residents/<int:patient_id>/", ResidentDetailView.as_view(), name="resident-detail"),
]
