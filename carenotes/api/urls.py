"""Routes of the care-notes API."""

urlpatterns: list = []
