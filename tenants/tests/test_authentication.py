"""Token authentication: hashed keys, revocation, expiry, and the principal cache."""

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.utils import timezone
from rest_framework.request import Request

from carenotes.core.request_state import TokenLookup, request_state
from tenants.authentication import TokenAuthentication
from tenants.models import ApiToken
from tenants.principal import TokenAuth
from tenants.selectors import token_auth_get
from tenants.services import api_token_create, api_token_revoke, membership_revoke
from tenants.tests.factories import MembershipFactory, UserFactory
from tenants.tokens import token_digest

pytestmark = pytest.mark.django_db

ME_URL = "/api/me/"


def _client_for(api_client, key):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api_client


def test_me_lists_the_callers_memberships(api_client):
    membership = MembershipFactory(role="manager")
    _, key = api_token_create(user=membership.user)
    response = _client_for(api_client, key).get(ME_URL)
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {
        "user_id": membership.user.pk,
        "username": membership.user.username,
        "is_superuser": False,
        "memberships": [{"tenant_id": membership.tenant_id, "role": "manager"}],
    }


def test_no_credentials_is_401(api_client):
    response = api_client.get(ME_URL)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize(
    "header",
    ["Token", "Token a b", "Token not-a-real-key", "Token \u00e9\u00e9"],
)
def test_bad_token_header_is_401(api_client, header):
    response = api_client.get(ME_URL, HTTP_AUTHORIZATION=header.encode().decode("latin-1"))
    assert response.status_code == HTTPStatus.UNAUTHORIZED


def test_only_a_digest_of_the_key_is_stored():
    user = UserFactory()
    token, key = api_token_create(user=user)
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert key not in {str(value) for value in row.values()}
    assert row["key_prefix"] == key[:8]


def test_revoked_token_stops_working_even_when_cached(api_client):
    user = UserFactory()
    token, key = api_token_create(user=user)
    client = _client_for(api_client, key)
    assert client.get(ME_URL).status_code == HTTPStatus.OK  # now cached
    api_token_revoke(token=token)
    assert client.get(ME_URL).status_code == HTTPStatus.UNAUTHORIZED


def test_expired_token_is_refused_even_when_cached(api_client, monkeypatch):
    user = UserFactory()
    expires_at = timezone.now() + timedelta(hours=1)
    _, key = api_token_create(user=user, expires_at=expires_at)
    client = _client_for(api_client, key)
    assert client.get(ME_URL).status_code == HTTPStatus.OK  # now cached
    later = expires_at + timedelta(seconds=1)
    monkeypatch.setattr("tenants.selectors.timezone.now", lambda: later)
    assert client.get(ME_URL).status_code == HTTPStatus.UNAUTHORIZED


def test_token_created_already_expired_is_refused(api_client):
    user = UserFactory()
    _, key = api_token_create(user=user, expires_at=timezone.now() - timedelta(seconds=1))
    assert _client_for(api_client, key).get(ME_URL).status_code == HTTPStatus.UNAUTHORIZED


def test_revoking_a_membership_applies_at_once_when_cached(api_client):
    membership = MembershipFactory()
    _, key = api_token_create(user=membership.user)
    client = _client_for(api_client, key)
    assert client.get(ME_URL).json()["memberships"] != []
    membership_revoke(user=membership.user, tenant=membership.tenant)
    assert client.get(ME_URL).json()["memberships"] == []


def test_deactivated_user_token_stops_working(api_client):
    user = UserFactory()
    _, key = api_token_create(user=user)
    client = _client_for(api_client, key)
    assert client.get(ME_URL).status_code == HTTPStatus.OK
    user.is_active = False
    user.save()
    assert client.get(ME_URL).status_code == HTTPStatus.UNAUTHORIZED


def test_cached_principal_costs_no_database_query(api_client, django_assert_num_queries):
    user = UserFactory()
    _, key = api_token_create(user=user)
    client = _client_for(api_client, key)
    client.get(ME_URL)
    with django_assert_num_queries(0):
        assert client.get(ME_URL).status_code == HTTPStatus.OK


def test_deleted_token_stops_working_even_when_cached(api_client):
    user = UserFactory()
    token, key = api_token_create(user=user)
    client = _client_for(api_client, key)
    assert client.get(ME_URL).status_code == HTTPStatus.OK  # now cached
    token.delete()
    assert client.get(ME_URL).status_code == HTTPStatus.UNAUTHORIZED


def test_the_named_tenants_facts_come_with_the_principal_in_one_round_trip(
    token_client, monkeypatch
):
    membership = MembershipFactory(role="manager")
    client = token_client(membership.user)
    url = f"/api/care-stats/?tenant_id={membership.tenant_id}"
    assert client.get(url).status_code == HTTPStatus.OK  # caches principal and tenant facts

    def separate_lookup(**kwargs):
        raise AssertionError("tenant facts were fetched in a separate round trip")

    monkeypatch.setattr("tenants.selectors.tenant_info_get", separate_lookup)
    assert client.get(url).status_code == HTTPStatus.OK


def test_a_lookup_this_request_already_made_is_reused_for_its_key_only(rf):
    first, second = UserFactory(), UserFactory()
    _, first_key = api_token_create(user=first)
    _, second_key = api_token_create(user=second)
    looked_up = TokenAuth(principal=token_auth_get(key=first_key).principal)
    authentication = TokenAuthentication()

    def authenticate(key):
        request = Request(rf.get(ME_URL, HTTP_AUTHORIZATION=f"Token {key}"))
        request_state(request).token_lookup = TokenLookup(
            digest=token_digest(first_key), auth=looked_up
        )
        return authentication.authenticate(request)

    user, auth = authenticate(first_key)
    assert user.pk == first.pk
    assert auth is looked_up  # not read again (an equal copy would be)
    user, auth = authenticate(second_key)
    assert (user.pk, auth.principal.user_id) == (second.pk, second.pk)
