"""Routes of the dashboard's pages, its API endpoint and the session sign-in pages."""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from dashboard import views
from dashboard.api import ResidentAttentionView
from dashboard.csp import csp_protect

app_name = "dashboard"

urlpatterns = [
    path("", views.tenant_pick, name="index"),
    path("<int:tenant_id>/", views.tenant_dashboard, name="tenant"),
    path("<int:tenant_id>/attention/", views.attention_list, name="attention"),
    path("<int:tenant_id>/high-priority/", views.high_priority_feed, name="high-priority"),
    path("<int:tenant_id>/export/counts.csv", views.export_counts, name="export-counts"),
    path(
        "<int:tenant_id>/export/high-priority.csv",
        views.export_high_priority,
        name="export-high-priority",
    ),
]

# Under /api/ beside the other endpoints (carenotes.urls); no namespace, like them.
api_urlpatterns = [
    path("residents/attention/", ResidentAttentionView.as_view(), name="residents-attention"),
]

# Django's session sign-in, in the dashboard's templates and under its CSP.
account_urlpatterns = [
    path(
        "login/",
        csp_protect(auth_views.LoginView.as_view(template_name="dashboard/login.html")),
        name="login",
    ),
    path("logout/", csp_protect(auth_views.LogoutView.as_view()), name="logout"),
    path(
        "password_change/",
        csp_protect(
            auth_views.PasswordChangeView.as_view(
                template_name="dashboard/password_change.html",
                success_url=reverse_lazy("password_change_done"),
            )
        ),
        name="password_change",
    ),
    path(
        "password_change/done/",
        csp_protect(
            auth_views.PasswordChangeDoneView.as_view(
                template_name="dashboard/password_change_done.html"
            )
        ),
        name="password_change_done",
    ),
]
