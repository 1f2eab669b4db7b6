"""Schemathesis over the drf-spectacular schema: valid and invalid inputs to every operation.

Requests go through the real WSGI application (middleware, authentication, throttling,
PostgreSQL, Redis) as a real tenant member. Half of the generated cases have their tenant,
facility, patient (resident) and note ids, and resident references, swapped for ones that
exist in that tenant, so the generated values reach the selectors and services instead of
stopping at a 404 or an empty list.
"""

import json
from datetime import date, timedelta

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import positive_data_acceptance

from carenotes.core.params import BIGINT_MAX
from carenotes.notes.selectors import PATIENT_REFERENCE_MAX_LENGTH
from carenotes.notes.tests.factories import CareNoteFactory
from stats.ranges import STATS_RANGE_MAX_DAYS
from tenants.services import api_token_create
from tenants.tests.factories import MembershipFactory

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# Per operation and generation mode; enough to find the classic crashes in about 10 s.
FUZZ_MAX_EXAMPLES = 100
FUZZ_RANGE_YEAR = 2025  # generated ranges are moved into a year the stats endpoint answers
# Not checked: schema-valid input may still be refused with a documented 400 for reasons
# a schema cannot state (a facility of another tenant, a date beyond a year from today).
# Every other built-in check runs: no 5xx, documented status codes, content types and
# headers, response bodies matching their schema, schema-invalid input rejected.


@pytest.fixture
def member():
    """A carer of a tenant with one note; returns (token header, real values by field)."""
    note = CareNoteFactory()
    membership = MembershipFactory(tenant=note.tenant, role="carer")
    _, key = api_token_create(user=membership.user, name="fuzz")
    ids = {
        "tenant_id": note.tenant_id,
        "facility_id": note.facility_id,
        "patient_id": note.patient_id,
        "note_id": note.pk,
    }
    references = {"reference": note.patient.reference}
    return {"Authorization": f"Token {key}"}, ids, references


def _schema_document() -> dict:
    """Return the OpenAPI document exactly as ``/api/schema/?format=json`` serves it."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


class _TestApp:
    """A WSGI app that forwards to the handler the current test built (see ``served_app``)."""

    handler: WSGIHandler | None = None

    def __call__(self, environ, start_response):
        return self.handler(environ, start_response)


# Built from the generator at import (no request, no database); pytest 9.2 breaks
# schemathesis' fixture-based lazy loading, so the schema is bound to a forwarding app.
forwarding_app = _TestApp()
schema = schemathesis.openapi.from_dict(_schema_document())
schema.app = forwarding_app
schema.config.generation.update(modes=["positive", "negative"])
# `@schema.given` (the real-ids switch) cannot be combined with the examples the schema
# documents; those are sent by test_documented_examples_are_answered_as_documented.
schema.config.phases.examples.enabled = False


def _operations_with_examples(document_schema) -> list[str]:
    """Return the operation ids for which schemathesis finds examples to send."""
    operations = [result.ok() for result in document_schema.get_all_operations()]
    return [
        operation.definition.raw["operationId"]
        for operation in operations
        if operation.schema.get_strategies_from_examples(operation)
    ]


examples_schema = schemathesis.openapi.from_dict(_schema_document())
examples_schema = examples_schema.include(operation_id=_operations_with_examples(examples_schema))
examples_schema.app = forwarding_app
examples_schema.config.phases.fuzzing.enabled = False
examples_schema.config.phases.coverage.enabled = False


@pytest.fixture
def served_app(_plain_http):
    """Route the schema's requests to a fresh handler usable inside the test's transaction."""
    # Django closes the database connection after each request; inside a test that would
    # close the test's transaction (Django's own test client disconnects the same handler).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    # A fresh handler: middleware reads settings when it is built, and the test settings
    # (plain HTTP) are in place only now, not when carenotes.wsgi was imported.
    forwarding_app.handler = WSGIHandler()
    try:
        yield
    finally:
        forwarding_app.handler = None
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _use_real_values(case, ids: dict, references: dict) -> None:
    # Only values that are already valid are swapped: an invalid one (0, -1, "x", "") is
    # what makes a negative case negative, and must reach the app as generated.
    for container in (case.query, case.body, case.path_parameters):
        if not isinstance(container, dict):
            continue
        for field, real_id in ids.items():
            value = container.get(field)
            if type(value) is int and 1 <= value <= BIGINT_MAX:
                container[field] = real_id
        for field, real_reference in references.items():
            value = container.get(field)
            if type(value) is str and 1 <= len(value) <= PATIENT_REFERENCE_MAX_LENGTH:
                container[field] = real_reference


def _use_answerable_days(case, ids: dict) -> None:
    # Generated stats queries almost never name answerable days: ranges come reversed,
    # longer than a range may be, years out of bounds, beside a date or a period, with
    # foreign facility ids. Make them answerable, so the range selector, its cache and the
    # periods see generated values too: the tenant's own facility, a range moved into
    # FUZZ_RANGE_YEAR (keeping the generated day of the year and a length within
    # STATS_RANGE_MAX_DAYS), and only one way of naming the days.
    query = case.query if isinstance(case.query, dict) else {}
    if isinstance(query.get("facility_ids"), str):
        query["facility_ids"] = str(ids["facility_id"])
    try:
        first = date.fromisoformat(query["date_from"])
        last = date.fromisoformat(query["date_to"])
    except (KeyError, TypeError, ValueError):
        if "period" in query:
            for excluded in ("date", "date_from", "date_to"):
                query.pop(excluded, None)
        return
    first = date(FUZZ_RANGE_YEAR, 1, 1) + timedelta(days=first.timetuple().tm_yday - 1)
    query["date_from"] = first.isoformat()
    query["date_to"] = (first + timedelta(days=last.toordinal() % STATS_RANGE_MAX_DAYS)).isoformat()
    query.pop("date", None)
    query.pop("period", None)


@schema.parametrize()
@schema.given(real_ids=st.booleans())
@settings(
    max_examples=FUZZ_MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema_and_never_fails(case, real_ids, member, served_app):
    headers, ids, references = member
    if real_ids:
        _use_real_values(case, ids, references)
        _use_answerable_days(case, ids)
    case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])


@examples_schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_documented_examples_are_answered_as_documented(case, member, served_app):
    headers, _, _ = member
    case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])


def test_every_secured_operation_documents_the_common_errors():
    document = _schema_document()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"400", "401", "429"} <= set(responses), (method, path)
            assert "Retry-After" in responses["429"]["headers"], (method, path)
            assert ("413" in responses) == ("requestBody" in operation), (method, path)
