"""Fixtures for the analytics tests: a care group with notes and a member calling the API."""

import pytest

from stats import fastpath, views
from stats.tests.factories import CareGroup, care_group_create
from tenants.tests.factories import MembershipFactory


@pytest.fixture(autouse=True)
def no_zone_guesses(monkeypatch) -> dict[int, str]:
    """Start each test with no remembered tenant time zones (stats.fastpath._today_guess)."""
    zones: dict[int, str] = {}
    monkeypatch.setattr(fastpath, "_tenant_zones", zones)
    return zones


@pytest.fixture
def care_group() -> CareGroup:
    return care_group_create()


@pytest.fixture
def member_client(care_group, token_client):
    """An API client authenticated as a carer of the care group."""
    membership = MembershipFactory(tenant=care_group.tenant, role="carer")
    return token_client(membership.user)


@pytest.fixture
def served_fast(monkeypatch) -> list[bool]:
    """Record, per request to the stats view, whether the fast path answered it."""
    served = []
    real = views.care_stats_warm_hit

    def spy(request):
        response = real(request)
        served.append(response is not None)
        return response

    monkeypatch.setattr(views, "care_stats_warm_hit", spy)
    return served
