"""Session sign-in lockout (django-axes): the authentication backend and the lockout page.

Every ``django.contrib.auth`` sign-in that passes its request (the admin's login, any
``LoginView`` / ``AuthenticationForm``) goes through ``SignInLockoutBackend`` first: after
``AXES_FAILURE_LIMIT`` failures of one username from one address it refuses that pair, even
with the right password, for ``AXES_COOLOFF_TIME``; each attempt during the lockout starts
the wait again. Failures are kept in PostgreSQL (axes' database handler, table
``axes_accessattempt``) so a Redis restart does not lift a lockout. Operators lift one early
with ``manage.py axes_reset_username <username>`` or ``axes_reset_ip <address>``.
"""

from http import HTTPStatus

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.conf import settings
from django.http import HttpResponse
from django.utils.html import format_html

from carenotes.core.metrics import throttled

SIGNIN_LOCKOUT_SCOPE = "signin_lockout"
LOCKOUT_TITLE = "Too many failed sign-ins"
LOCKOUT_PAGE = (
    "<!doctype html>\n"
    '<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>\n'
    "<body><h1>{title}</h1>\n"
    "<p>Signing in as this user from your address is locked for {minutes} minutes after "
    "{limit} failed attempts. Each further attempt starts the wait again.</p>\n"
    "<p>Check the username and password, wait, then try again, or ask an administrator "
    "to unlock the account sooner.</p></body></html>\n"
)


class SignInLockoutBackend(AxesStandaloneBackend):
    """Refuse locked-out sign-ins (axes); sign-ins without a request are not web sign-ins.

    ``authenticate()`` without a request (the test client's ``login()``, scripts) has no
    address to lock and is left to the next backend; every Django sign-in view passes one.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """Return the 429 page of a locked-out sign-in, with Retry-After (axes' lockout callable)."""
    throttled(scope=SIGNIN_LOCKOUT_SCOPE)
    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds())
    page = format_html(
        LOCKOUT_PAGE,
        title=LOCKOUT_TITLE,
        minutes=max(1, -(-seconds // 60)),
        limit=settings.AXES_FAILURE_LIMIT,
    )
    response = HttpResponse(page, status=HTTPStatus.TOO_MANY_REQUESTS)
    response["Retry-After"] = str(seconds)
    return response
