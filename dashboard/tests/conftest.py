"""Fixtures of the dashboard tests."""

import pytest
from django.test import Client

from dashboard.tests.factories import DashboardGroup, dashboard_group_create


@pytest.fixture
def group(db) -> DashboardGroup:
    return dashboard_group_create()


@pytest.fixture
def signed_in():
    """Return a factory: signed_in(user) -> a Django test client with the user's session."""

    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make
