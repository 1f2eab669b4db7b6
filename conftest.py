"""Shared pytest fixtures: a clean cache per test and API clients acting as tenant members."""

import os

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient


@pytest.fixture(autouse=True)
def _isolated_cache():
    """Each test starts with an empty cache namespace (only this run's key prefix)."""
    # The backend instance itself, not the proxy: a test may point CACHES at a dead server
    # and its override can still be active when this teardown runs.
    backend = caches["default"]
    backend.delete_pattern("*")
    yield
    backend.delete_pattern("*")


@pytest.fixture(autouse=True)
def _plain_http(settings):
    """The test client speaks plain HTTP; production's HTTPS redirect would answer 301."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Factories set passwords; production's PBKDF2 rounds would dominate test time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """Pages link static files; the production manifest storage needs collectstatic first."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


CITUS_URL_MISSING = (
    "CITUS_URL is not set: start a cluster with `python tools/citus_cluster.py start` "
    "and export the CITUS_URL=... line it prints (needs the citus extension installed)"
)


@pytest.fixture(scope="session")
def citus_url() -> str:
    """Return the Citus coordinator's URL (CITUS_URL); skip the test when it is not set."""
    url = os.environ.get("CITUS_URL", "")
    if not url:
        pytest.skip(CITUS_URL_MISSING)
    return url


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def token_client():
    """Return a factory: token_client(user) -> APIClient authenticated with a fresh API token."""
    from tenants.services import api_token_create

    def make(user) -> APIClient:
        _, key = api_token_create(user=user, name="test")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return client

    return make


@pytest.fixture
def session_client():
    """Return a factory: session_client(user) -> a Django test client signed in as ``user``."""
    from django.test import Client

    def make(user, **defaults) -> Client:
        client = Client(**defaults)
        client.force_login(user)
        return client

    return make


@pytest.fixture(autouse=True)
def _rls_system_scope():
    """Test code outside requests acts as a trusted system context (all tenants, app role).

    Requests made through the test client get their own caller-scoped context from
    RowLevelSecurityMiddleware, exactly as in production (tenants/middleware.py).
    """
    from tenants.rls import rls_system

    with rls_system():
        yield


@pytest.fixture
def patient():
    """A resident of a facility of a tenant of its own (a module may define its own)."""
    from carenotes.notes.tests.factories import PatientFactory

    return PatientFactory()


@pytest.fixture
def carer_client(token_client, patient) -> APIClient:
    """An API client acting as a carer of the ``patient`` fixture's tenant."""
    from tenants.tests.factories import MembershipFactory

    return token_client(MembershipFactory(tenant=patient.tenant, role="carer").user)
