"""Request ids are echoed or generated, and every request logs one JSON line with its facts."""

import json
import logging
import re
from http import HTTPStatus

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import path
from rest_framework.request import Request

from carenotes.core.logjson import JsonFormatter
from carenotes.core.observability import (
    REQUEST_ID_HEADER,
    REQUEST_ID_MAX_LENGTH,
    REQUEST_LOG_MESSAGE,
    REQUEST_LOGGER_NAME,
    RequestLogMiddleware,
    request_tenant_tag,
)
from tenants.tests.factories import MembershipFactory, UserFactory

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def _boom(request):
    raise RuntimeError("unexpected failure in a view")


# Used by the test of a failing view (pytest.mark.urls points here).
urlpatterns = [path("boom", _boom, name="boom")]


def _request_records(caplog) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == REQUEST_LOGGER_NAME and record.getMessage() == REQUEST_LOG_MESSAGE
    ]


def _logged_line(caplog) -> dict:
    """Return the single request log line as the JSON formatter writes it, minus variables."""
    (record,) = _request_records(caplog)
    line = json.loads(JsonFormatter().format(record))
    assert isinstance(line.pop("ts"), str)
    assert isinstance(line.pop("duration_ms"), float)
    return line


def test_a_valid_request_id_is_echoed(client):
    response = client.get("/healthz", headers={REQUEST_ID_HEADER: "edge-7f3a.42:1"})
    assert response[REQUEST_ID_HEADER] == "edge-7f3a.42:1"


@pytest.mark.parametrize(
    "supplied",
    [None, "", "x" * (REQUEST_ID_MAX_LENGTH + 1), "bad id", "id\twith\ttabs", "id;drop", "é"],
)
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_uuid4(client, supplied):
    headers = {} if supplied is None else {REQUEST_ID_HEADER: supplied}
    first = client.get("/healthz", headers=headers)[REQUEST_ID_HEADER]
    second = client.get("/healthz", headers=headers)[REQUEST_ID_HEADER]
    assert GENERATED_ID.fullmatch(first)
    assert first != second


def test_the_longest_allowed_request_id_is_kept(client):
    supplied = "a" * REQUEST_ID_MAX_LENGTH
    assert client.get("/healthz", headers={REQUEST_ID_HEADER: supplied})[REQUEST_ID_HEADER] == (
        supplied
    )


@pytest.mark.django_db
def test_an_authenticated_request_logs_one_json_line(caplog, token_client):
    membership = MembershipFactory(role="manager")
    client = token_client(membership.user)
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER_NAME)
    client.get(f"/api/me/?tenant_id={membership.tenant_id}", headers={REQUEST_ID_HEADER: "req-1"})
    assert _logged_line(caplog) == {
        "level": "INFO",
        "logger": REQUEST_LOGGER_NAME,
        "message": REQUEST_LOG_MESSAGE,
        "request_id": "req-1",
        "method": "GET",
        "route": "me",
        "path": "/api/me/",
        "status": HTTPStatus.OK,
        "tenant_id": membership.tenant_id,
        "user_id": membership.user.pk,
    }


@pytest.mark.parametrize("tenant_param", ["", "abc", "-3", "١٢", "9" * 30])
def test_an_anonymous_request_with_a_malformed_tenant_id_logs_no_tenant(caplog, tenant_param):
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER_NAME)
    response = Client().get(f"/api/me/?tenant_id={tenant_param}")
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    line = _logged_line(caplog)
    assert (line["status"], line["tenant_id"], line["user_id"]) == (401, None, None)
    assert line["request_id"] == response[REQUEST_ID_HEADER]


def test_a_tenant_tagged_by_a_drf_view_is_logged(caplog):
    def view(request):
        request_tenant_tag(Request(request), 42)
        return HttpResponse()

    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER_NAME)
    RequestLogMiddleware(view)(RequestFactory().post("/api/notes/?tenant_id=7"))
    assert _logged_line(caplog)["tenant_id"] == 42


@pytest.mark.django_db
def test_logging_never_loads_a_lazy_session_user(client, django_assert_num_queries, caplog):
    client.force_login(UserFactory())
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER_NAME)
    with django_assert_num_queries(0):
        client.get("/healthz")
    assert _logged_line(caplog)["user_id"] is None


@pytest.mark.urls(__name__)
def test_a_failing_view_still_gets_an_id_and_a_500_line(caplog):
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER_NAME)
    response = Client(raise_request_exception=False).get(
        "/boom", headers={REQUEST_ID_HEADER: "req-500"}
    )
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert response[REQUEST_ID_HEADER] == "req-500"
    line = _logged_line(caplog)
    assert (line["request_id"], line["route"], line["status"]) == ("req-500", "boom", 500)


@pytest.mark.django_db
def test_a_posted_note_logs_the_tenant_named_in_its_body(caplog, token_client):
    from carenotes.notes.tests.factories import PatientFactory, note_payload

    patient = PatientFactory()
    membership = MembershipFactory(tenant=patient.tenant, role="carer")
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER_NAME)
    response = token_client(membership.user).post(
        "/api/notes/", note_payload(patient), format="json"
    )
    assert response.status_code == HTTPStatus.CREATED
    assert _logged_line(caplog)["tenant_id"] == patient.tenant_id
