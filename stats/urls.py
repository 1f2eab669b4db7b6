"""Routes of the analytics API."""

urlpatterns: list = []
