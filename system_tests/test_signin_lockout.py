"""Sign-in protection: session sign-in lockout (django-axes) and API token guessing per address."""

import runpy
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory
from django.utils import timezone
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from carenotes.core import auth_throttle, throttling
from carenotes.core.auth_throttle import AUTH_FAILURE_DETAIL, AUTH_FAILURE_SCOPE
from carenotes.core.signin import LOCKOUT_TITLE, SIGNIN_LOCKOUT_SCOPE
from stats.tests.factories import CARE_STATS_URL, DAY, care_group_create
from tenants.services import api_token_create, api_token_revoke
from tenants.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

LOGIN_URL = "/admin/login/"
PASSWORD = "correct-horse-battery"  # tenants.tests.factories.UserFactory's
ATTACKER, NEIGHBOUR = "198.51.100.66", "198.51.100.7"
ME_URL = "/api/me/"
# A pinned clock 10 s into a one-minute window: the window ends 50 s later.
PINNED_NOW = 1_700_000_000 - 1_700_000_000 % 60 + 10
PINNED_RETRY_AFTER = 50
TOKEN_FAILURES = 3


def _throttled(scope: str) -> float:
    return REGISTRY.get_sample_value("carenotes_throttled_requests_total", {"scope": scope}) or 0


# --- session sign-in lockout ------------------------------------------------------------------


@pytest.fixture
def staff():
    return UserFactory(is_staff=True, is_superuser=True)


def _sign_in(username: str, password: str, address: str = ATTACKER):
    return Client().post(
        LOGIN_URL,
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )


def _fail_until_locked(settings, username: str, address: str = ATTACKER) -> list[int]:
    return [
        _sign_in(username, "wrong-password", address).status_code
        for _ in range(settings.AXES_FAILURE_LIMIT)
    ]


def _signed_in(response) -> bool:
    return response.status_code == HTTPStatus.FOUND and response["Location"] == "/admin/"


def test_the_right_password_signs_in(staff):
    assert _signed_in(_sign_in(staff.username, PASSWORD))


def test_after_the_failure_limit_even_the_right_password_is_refused(settings, staff):
    before = _throttled(SIGNIN_LOCKOUT_SCOPE)

    statuses = _fail_until_locked(settings, staff.username)
    response = _sign_in(staff.username, PASSWORD)

    # Failures below the limit show the form again; the one reaching it locks.
    limit = settings.AXES_FAILURE_LIMIT
    assert statuses == [HTTPStatus.OK] * (limit - 1) + [HTTPStatus.TOO_MANY_REQUESTS]
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response["Retry-After"] == str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    page = response.content.decode()
    assert LOCKOUT_TITLE in page
    assert f"after {limit} failed attempts" in page
    assert _throttled(SIGNIN_LOCKOUT_SCOPE) == before + 2


def test_a_lockout_binds_one_username_from_one_address_only(settings, staff):
    colleague = UserFactory(is_staff=True, is_superuser=True)
    _fail_until_locked(settings, staff.username)

    assert _sign_in(staff.username, PASSWORD).status_code == HTTPStatus.TOO_MANY_REQUESTS
    # Another user from the same address, and the same user from another address.
    assert _signed_in(_sign_in(colleague.username, PASSWORD))
    assert _signed_in(_sign_in(staff.username, PASSWORD, NEIGHBOUR))


def test_the_lockout_ends_after_the_cool_off(settings, staff):
    _fail_until_locked(settings, staff.username)
    assert _sign_in(staff.username, PASSWORD).status_code == HTTPStatus.TOO_MANY_REQUESTS

    # Each attempt during the lockout restarted the wait: move them all past it.
    past = timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.update(attempt_time=past)

    assert _signed_in(_sign_in(staff.username, PASSWORD))


def test_a_successful_sign_in_forgets_earlier_failures(settings, staff):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _sign_in(staff.username, "wrong-password")
    assert _signed_in(_sign_in(staff.username, PASSWORD))
    # The count restarted: the limit minus one failures again do not lock.
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in(staff.username, "wrong-password").status_code == HTTPStatus.OK
    assert _signed_in(_sign_in(staff.username, PASSWORD))


def test_failures_are_kept_in_postgresql_so_an_empty_redis_keeps_the_lockout(settings, staff):
    _fail_until_locked(settings, staff.username)
    caches["default"].clear()

    assert _sign_in(staff.username, PASSWORD).status_code == HTTPStatus.TOO_MANY_REQUESTS
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.ip_address) == (staff.username, ATTACKER)


def test_any_contrib_auth_sign_in_form_is_protected(settings, staff):
    # Not just the admin: every Django sign-in view validates an AuthenticationForm with the
    # request, as a dashboard LoginView at /accounts/login/ will.
    def form_valid(password: str) -> bool:
        request = RequestFactory().post("/accounts/login/", REMOTE_ADDR=ATTACKER)
        form = AuthenticationForm(request, data={"username": staff.username, "password": password})
        return form.is_valid()

    assert not any(form_valid("wrong-password") for _ in range(settings.AXES_FAILURE_LIMIT))
    assert not form_valid(PASSWORD)


def test_sign_ins_behind_the_trusted_proxy_are_counted_per_forwarded_address(settings, staff):
    settings.TRUSTED_PROXY_COUNT = 1
    for _ in range(settings.AXES_FAILURE_LIMIT):
        Client().post(
            LOGIN_URL,
            {"username": staff.username, "password": "wrong-password"},
            REMOTE_ADDR="10.0.0.1",
            HTTP_X_FORWARDED_FOR=ATTACKER,
        )
    assert AccessAttempt.objects.get().ip_address == ATTACKER
    # The proxy's own address is not locked for the user: another caller behind it signs in.
    response = Client().post(
        LOGIN_URL,
        {"username": staff.username, "password": PASSWORD, "next": "/admin/"},
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR=NEIGHBOUR,
    )
    assert _signed_in(response)


# --- API token guessing -----------------------------------------------------------------------


@pytest.fixture
def guessing(settings, monkeypatch):
    """TOKEN_FAILURES failed token lookups per address and minute, on a clock that stands still."""
    settings.AUTH_FAILURE_THROTTLE_RATE = f"{TOKEN_FAILURES}/m"
    monkeypatch.setattr(throttling, "clock", lambda: PINNED_NOW)


def _me(key: str, address: str = ATTACKER):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get(ME_URL, REMOTE_ADDR=address)


def _guess(address: str = ATTACKER):
    return _me("not-a-real-key", address)


def test_bad_tokens_beyond_the_budget_are_429_before_any_lookup(
    guessing, django_assert_num_queries
):
    before = _throttled(AUTH_FAILURE_SCOPE)
    statuses = [_guess().status_code for _ in range(TOKEN_FAILURES)]

    with django_assert_num_queries(0):
        response = _guess()

    assert statuses == [HTTPStatus.UNAUTHORIZED] * TOKEN_FAILURES
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response["Retry-After"] == str(PINNED_RETRY_AFTER)
    assert response.json() == {
        "detail": f"{AUTH_FAILURE_DETAIL} Expected available in {PINNED_RETRY_AFTER} seconds."
    }
    assert _throttled(AUTH_FAILURE_SCOPE) == before + 1


def test_a_good_token_from_a_locked_address_is_refused_too(guessing):
    # Letting it through would tell a guesser which guess was right (200 among 429s).
    _, key = api_token_create(user=MembershipFactory().user)
    for _ in range(TOKEN_FAILURES):
        _guess()
    assert _me(key).status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert _me(key, NEIGHBOUR).status_code == HTTPStatus.OK


def test_another_address_is_unaffected_and_the_next_window_is_open(guessing, monkeypatch):
    for _ in range(TOKEN_FAILURES + 2):
        _guess()
    assert _guess().status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert _guess(NEIGHBOUR).status_code == HTTPStatus.UNAUTHORIZED

    monkeypatch.setattr(throttling, "clock", lambda: PINNED_NOW + PINNED_RETRY_AFTER)
    assert _guess().status_code == HTTPStatus.UNAUTHORIZED


def test_good_tokens_and_requests_without_one_spend_no_budget(guessing, api_client):
    _, key = api_token_create(user=MembershipFactory().user)
    for _ in range(TOKEN_FAILURES * 2):
        assert _me(key).status_code == HTTPStatus.OK
        assert api_client.get(ME_URL, REMOTE_ADDR=ATTACKER).status_code == (HTTPStatus.UNAUTHORIZED)
    assert [_guess().status_code for _ in range(TOKEN_FAILURES)] == [
        HTTPStatus.UNAUTHORIZED
    ] * TOKEN_FAILURES


def test_revoked_and_expired_tokens_count_as_failures(guessing):
    user = MembershipFactory().user
    revoked, revoked_key = api_token_create(user=user)
    api_token_revoke(token=revoked)
    expired, expired_key = api_token_create(user=user)
    expired.expires_at = timezone.now() - timedelta(seconds=1)
    expired.save()
    statuses = [_me(revoked_key).status_code, _me(expired_key).status_code, _guess().status_code]
    assert statuses == [HTTPStatus.UNAUTHORIZED] * TOKEN_FAILURES
    assert _me(revoked_key).status_code == HTTPStatus.TOO_MANY_REQUESTS


def test_behind_the_trusted_proxy_the_forwarded_address_is_counted(guessing, settings):
    settings.TRUSTED_PROXY_COUNT = 1

    def guess(forwarded_for: str):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
        return client.get(ME_URL, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded_for)

    for _ in range(TOKEN_FAILURES):
        guess(ATTACKER)
    assert guess(ATTACKER).status_code == HTTPStatus.TOO_MANY_REQUESTS
    # The proxy is the peer of both, yet the neighbour behind it is not locked.
    assert guess(NEIGHBOUR).status_code == HTTPStatus.UNAUTHORIZED
    # A client cannot escape by writing its own X-Forwarded-For: the proxy appends the real one.
    assert guess(f"{NEIGHBOUR}, {ATTACKER}").status_code == HTTPStatus.TOO_MANY_REQUESTS


def test_the_warm_hit_path_is_untouched_by_the_guessing_check(guessing, monkeypatch):
    # Warm stats hits answer keys this process saw succeed, before DRF: they make no lookup,
    # so they reveal nothing to a guesser and pay nothing for the check.
    group = care_group_create()
    _, key = api_token_create(user=MembershipFactory(tenant=group.tenant).user)
    params = {"tenant_id": group.tenant.pk, "date": DAY.isoformat()}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get(CARE_STATS_URL, params, REMOTE_ADDR=ATTACKER)["X-Cache"] == "MISS"

    checks = []
    real = auth_throttle.auth_failures_check
    monkeypatch.setattr(
        "tenants.authentication.auth_failures_check",
        lambda request: checks.append(request) or real(request),
    )
    response = client.get(CARE_STATS_URL, params, REMOTE_ADDR=ATTACKER)
    assert (response.status_code, response["X-Cache"], checks) == (HTTPStatus.OK, "HIT", [])


def test_token_guessing_can_be_switched_off(settings):
    settings.AUTH_FAILURE_THROTTLE_RATE = None
    assert all(_guess().status_code == HTTPStatus.UNAUTHORIZED for _ in range(40))


# --- settings ---------------------------------------------------------------------------------

SETTINGS_FILE = Path(__file__).resolve().parents[1] / "carenotes" / "settings.py"


def _settings_with(monkeypatch, **env: str) -> dict:
    """Run carenotes/settings.py with ``env`` added to the environment; return its names."""
    monkeypatch.setenv("DJANGO_DEBUG", "1")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_FILE))


def test_the_limits_default_safely_and_follow_their_variables(monkeypatch):
    for name in ("THROTTLE_RATE_AUTH_FAILURES", "SIGNIN_FAILURE_LIMIT", "SIGNIN_COOLOFF_MINUTES"):
        monkeypatch.delenv(name, raising=False)
    defaults = _settings_with(monkeypatch, DJANGO_BEHIND_TLS_PROXY="0")
    assert (defaults["AUTH_FAILURE_THROTTLE_RATE"], defaults["TRUSTED_PROXY_COUNT"]) == ("30/m", 0)
    assert (defaults["AXES_FAILURE_LIMIT"], defaults["AXES_COOLOFF_TIME"]) == (
        5,
        timedelta(minutes=15),
    )
    assert _settings_with(monkeypatch, DJANGO_BEHIND_TLS_PROXY="1")["TRUSTED_PROXY_COUNT"] == 1

    chosen = _settings_with(
        monkeypatch,
        THROTTLE_RATE_AUTH_FAILURES="100/h",
        SIGNIN_FAILURE_LIMIT="3",
        SIGNIN_COOLOFF_MINUTES="60",
        DJANGO_TRUSTED_PROXY_COUNT="2",
    )
    assert (
        chosen["AUTH_FAILURE_THROTTLE_RATE"],
        chosen["AXES_FAILURE_LIMIT"],
        chosen["AXES_COOLOFF_TIME"],
        chosen["TRUSTED_PROXY_COUNT"],
    ) == ("100/h", 3, timedelta(hours=1), 2)
    assert (
        _settings_with(monkeypatch, THROTTLE_RATE_AUTH_FAILURES="off")["AUTH_FAILURE_THROTTLE_RATE"]
        is None
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"THROTTLE_RATE_AUTH_FAILURES": "30 per minute"}, "THROTTLE_RATE_AUTH_FAILURES must"),
        ({"SIGNIN_FAILURE_LIMIT": "0"}, "SIGNIN_FAILURE_LIMIT and SIGNIN_COOLOFF_MINUTES must"),
        ({"SIGNIN_COOLOFF_MINUTES": "-1"}, "SIGNIN_FAILURE_LIMIT and SIGNIN_COOLOFF_MINUTES"),
        ({"DJANGO_TRUSTED_PROXY_COUNT": "-1"}, "DJANGO_TRUSTED_PROXY_COUNT must be 0 or more"),
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN must be at least 32 random characters"),
    ],
)
def test_malformed_limits_stop_startup_naming_the_variable(monkeypatch, env, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        _settings_with(monkeypatch, **env)
