"""A view whose database connection fails answers 503 with Retry-After, never a bare 500."""

from http import HTTPStatus

import pytest
from django.db import OperationalError

from carenotes.core.resilience import DATABASE_RETRY_AFTER_SECONDS, DATABASE_UNAVAILABLE_DETAIL
from carenotes.notes.api import views
from carenotes.notes.tests.factories import PatientFactory
from tenants.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_a_lost_database_connection_answers_503_with_retry_after(token_client, monkeypatch):
    patient = PatientFactory()
    client = token_client(MembershipFactory(tenant=patient.tenant).user)

    def connection_lost(**kwargs):
        # The real fault (pg_terminate_backend mid-request) is in test_faults.py.
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(views, "note_list", connection_lost)

    response = client.get("/api/notes/", {"tenant_id": patient.tenant_id})

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["Retry-After"] == str(DATABASE_RETRY_AFTER_SECONDS)
    assert response.json() == {"detail": DATABASE_UNAVAILABLE_DETAIL}
