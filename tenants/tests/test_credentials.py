"""Credential claims of docs/SECURITY.md not covered by test_authentication: a database copy
gives no working key, revocation through the admin applies at once, and a lost cache
invalidation is bounded by PRINCIPAL_CACHE_TTL."""

import time
from http import HTTPStatus

import pytest
from django.test import Client
from django.utils import timezone

from tenants.models import ApiToken, Membership
from tenants.services import api_token_create, api_token_revoke
from tenants.tests.factories import MembershipFactory, UserFactory, tenant_admin_create

pytestmark = pytest.mark.django_db

ME_URL = "/api/me/"


def _get(api_client, key: str, url: str = ME_URL):
    return api_client.get(url, HTTP_AUTHORIZATION=f"Token {key}")


def test_nothing_stored_in_the_token_row_authenticates(api_client):
    token, key = api_token_create(user=UserFactory())
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert _get(api_client, key).status_code == HTTPStatus.OK
    stored = {str(value) for value in row.values() if value}
    assert [_get(api_client, value).status_code for value in sorted(stored)] == [
        HTTPStatus.UNAUTHORIZED
    ] * len(stored)


def test_revoking_a_token_in_the_admin_applies_at_once_when_cached(api_client):
    token, key = api_token_create(user=UserFactory(), name="phone")
    assert _get(api_client, key).status_code == HTTPStatus.OK  # principal now cached
    admin = Client()
    admin.force_login(UserFactory(is_superuser=True, is_staff=True))
    now = timezone.localtime()
    response = admin.post(
        f"/admin/tenants/apitoken/{token.pk}/change/",
        {
            "user": token.user_id,
            "name": "phone",
            "expires_at_0": "",
            "expires_at_1": "",
            "revoked_at_0": now.date().isoformat(),
            "revoked_at_1": now.time().strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == HTTPStatus.FOUND, response.content[:2000]
    assert _get(api_client, key).status_code == HTTPStatus.UNAUTHORIZED


def test_removing_a_membership_in_the_admin_applies_at_once_when_cached(api_client):
    membership = MembershipFactory()
    _, key = api_token_create(user=membership.user)
    stats_url = f"/api/notes/?tenant_id={membership.tenant_id}"
    assert _get(api_client, key, stats_url).status_code == HTTPStatus.OK  # cached
    admin = Client()
    admin.force_login(tenant_admin_create(tenant=membership.tenant))
    response = admin.post(f"/admin/tenants/membership/{membership.pk}/delete/", {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert _get(api_client, key, stats_url).status_code == HTTPStatus.NOT_FOUND


def test_a_lost_invalidation_is_bounded_by_the_principal_cache_ttl(
    api_client, settings, monkeypatch
):
    settings.PRINCIPAL_CACHE_TTL = 1
    token, key = api_token_create(user=UserFactory())
    assert _get(api_client, key).status_code == HTTPStatus.OK  # cached for 1 s
    # Redis unreachable during the revocation: the cached principal is not dropped.
    monkeypatch.setattr("tenants.signals.principal_cache_invalidate", lambda **kwargs: None)
    api_token_revoke(token=token)
    assert _get(api_client, key).status_code == HTTPStatus.OK  # stale, within the TTL
    time.sleep(settings.PRINCIPAL_CACHE_TTL + 0.2)
    assert _get(api_client, key).status_code == HTTPStatus.UNAUTHORIZED
