"""The Content-Security-Policy of the dashboard's pages: the app's own scripts and styles only.

A small decorator rather than django-csp: the policy is one fixed string for the pages this
app renders, and a site-wide middleware would also have to carve out the admin and the
Swagger UI (their inline scripts), which this app does not own.
"""

from collections.abc import Callable
from functools import wraps

CSP_HEADER = "Content-Security-Policy"
# No 'unsafe-inline' anywhere: the pages have no inline script, style or event handler.
# Charts draw on <canvas> (no CSS injected); data travels in <script type="application/json">
# elements, which are data blocks, never executed.
DASHBOARD_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)


def csp_protect(view: Callable) -> Callable:
    """Return ``view`` with the dashboard's Content-Security-Policy on every response."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.headers.setdefault(CSP_HEADER, DASHBOARD_CSP)
        return response

    return wrapped
