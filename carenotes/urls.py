"""URL configuration: health probes, the API, its documentation, the admin and the dashboard."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from carenotes.core.health import healthz, readyz
from dashboard.urls import account_urlpatterns, api_urlpatterns

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("api/", include("tenants.urls")),
    path("api/", include("stats.urls")),
    path("api/", include("carenotes.notes.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/", admin.site.urls),
    # The managers' dashboard (dashboard/): its pages, its API endpoint, the session sign-in.
    path("dashboard/", include("dashboard.urls")),
    path("api/", include(api_urlpatterns)),
    path("accounts/", include(account_urlpatterns)),
]
