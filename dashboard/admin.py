"""The admin's link to the dashboard: its "View site" leads there for those who may see it.

Set at admin autodiscovery. The site's ``each_context`` decides per request, with the
dashboard's own rule (dashboard.access), so the link is shown only to users with a manager or
admin membership, and to superusers.
"""

from django.contrib import admin
from django.urls import reverse

from dashboard.access import may_see_any_dashboard
from tenants.selectors import principal_get_for_user

_site_each_context = admin.site.each_context


def each_context_with_dashboard(request) -> dict:
    """Return the admin's context, its site_url the dashboard or None (no link)."""
    context = _site_each_context(request)
    user = getattr(request, "user", None)
    may_see = (
        user is not None
        and user.is_authenticated
        and may_see_any_dashboard(principal_get_for_user(user=user))
    )
    context["site_url"] = reverse("dashboard:index") if may_see else None
    return context


admin.site.each_context = each_context_with_dashboard
