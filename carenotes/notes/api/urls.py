"""Routes of the care-notes API."""

from django.urls import path

from carenotes.notes.api.views import NoteDetailView, NoteListCreateView

urlpatterns = [
    path("notes/", NoteListCreateView.as_view(), name="note-list"),
    path("notes/<int:note_id>/", NoteDetailView.as_view(), name="note-detail"),
]
