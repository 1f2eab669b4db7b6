"""Routes of the analytics API."""

from django.urls import path

from stats.views import CareStatsView

urlpatterns = [
    path("care-stats/", CareStatsView.as_view(), name="care-stats"),
]
