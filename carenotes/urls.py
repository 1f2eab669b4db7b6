"""URL configuration: health probes, metrics, the API, its documentation, the admin and the
dashboard."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from carenotes.core.health import healthz, readyz
from carenotes.core.metrics import METRICS_ROUTE, metrics_view
from dashboard.urls import account_urlpatterns, api_urlpatterns

# Where `/` leads, and with it the admin's "View site" link (its site_url is `/`; shown to
# those who may see a dashboard, dashboard/admin.py): the managers' dashboard, which sends
# anyone not signed in to the login page. The API documentation stays at /api/docs/.
HOME_TARGET = "dashboard:index"

urlpatterns = [
    # 302, not 301: the target may change again, so browsers must not remember it.
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
    # The managers' dashboard (dashboard/): its pages, its API endpoint, the session sign-in.
    path("dashboard/", include("dashboard.urls")),
    path("api/", include(api_urlpatterns)),
    path("accounts/", include(account_urlpatterns)),
]
