"""The admin's link to the dashboard: "View site" (``/``, which leads to the dashboard) is
shown only to those who may see one.

Set at admin autodiscovery. The site's ``each_context`` decides per request, with the
dashboard's own rule (dashboard.access): users with a manager or admin membership, and
superusers, keep the link; other staff get none (the page would refuse them).
"""

from django.contrib import admin

from dashboard.access import may_see_any_dashboard
from tenants.selectors import principal_get_for_user

_site_each_context = admin.site.each_context


def each_context_with_dashboard(request) -> dict:
    """Return the admin's context, without the site link for users who have no dashboard."""
    context = _site_each_context(request)
    user = getattr(request, "user", None)
    may_see = (
        user is not None
        and user.is_authenticated
        and may_see_any_dashboard(principal_get_for_user(user=user))
    )
    if not may_see:
        context["site_url"] = None

    return context


admin.site.each_context = each_context_with_dashboard
