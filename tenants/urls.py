"""Routes of the access API."""

from django.urls import path

from tenants.views import MeView

urlpatterns = [
    path("me/", MeView.as_view(), name="me"),
]
