"""Fixtures for the analytics tests: a care group with notes and a member calling the API."""

import pytest

from stats.tests.factories import CareGroup, care_group_create
from tenants.tests.factories import MembershipFactory


@pytest.fixture
def care_group() -> CareGroup:
    return care_group_create()


@pytest.fixture
def member_client(care_group, token_client):
    """An API client authenticated as a carer of the care group."""
    membership = MembershipFactory(tenant=care_group.tenant, role="carer")
    return token_client(membership.user)
