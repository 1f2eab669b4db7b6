"""URL configuration: health probes, metrics, the API, its documentation and the admin."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from carenotes.core.health import healthz, readyz
from carenotes.core.metrics import METRICS_ROUTE, metrics_view

# Where `/` leads, and with it the admin's "View site" link (its site_url is `/`): the API
# documentation, until the dashboard lives at /dashboard/.
HOME_TARGET = "swagger-ui"

urlpatterns = [
    # 302, not 301: the target will change, so browsers must not remember it.
    path("", RedirectView.as_view(pattern_name=HOME_TARGET, permanent=False), name="home"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    # Prometheus, with the METRICS_TOKEN bearer token (404 while it is unset).
    path("metrics", metrics_view, name=METRICS_ROUTE),
    path("api/", include("tenants.urls")),
    path("api/", include("stats.urls")),
    path("api/", include("carenotes.notes.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/", admin.site.urls),
]
