"""The CareNote changelist costs the same queries at any size, never counts the table, says
its count is an estimate, and fits its columns."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from carenotes.notes.admin import NOTE_LIST_MAX_SHOW_ALL, NOTE_LIST_PER_PAGE, TENANT_FILTER_PARAM
from carenotes.notes.models import CareNote
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from tenants.admin_paging import (
    PAGE_NUMBER_MAX,
    EstimatedCountPaginator,
    approximate_count_label,
)
from tenants.rls import rls_owner
from tenants.tests.factories import MembershipFactory, UserFactory, tenant_admin_create

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/carenotes/carenote/"
NOTES_TABLE = "carenotes_carenote"
SMALL, LARGE = 5, 60


@pytest.fixture
def patient():
    return PatientFactory()


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(params=["tenant admin", "superuser"])
def staff_client(request, patient) -> Client:
    if request.param == "superuser":
        return _client_for(UserFactory(is_superuser=True, is_staff=True))
    return _client_for(tenant_admin_create(tenant=patient.tenant))


def _planned(notes: int) -> int:
    """Return the planner's estimate of ``notes`` rows, all in one monthly partition.

    ANALYZE makes reltuples exact for these small tables; the planner counts at least one
    row for each of the other (empty) partitions it has to scan.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'carenotes_carenote'::regclass"
        )
        (partitions,) = cursor.fetchone()
    return notes + partitions - 1


def _add_notes(patient, count: int) -> None:
    # One author: every new user costs a deliberately slow password hash.
    author = CareNote.objects.values_list("author", flat=True).first() or UserFactory().pk
    start = datetime(2025, 3, 10, tzinfo=UTC) + timedelta(days=CareNote.objects.count())
    CareNote.objects.bulk_create(
        CareNote(
            tenant_id=patient.tenant_id,
            facility_id=patient.facility_id,
            patient=patient,
            author_id=author,
            category="observation",
            priority=3,
            body="Settled well.",
            created_at=start + timedelta(minutes=i),
        )
        for i in range(count)
    )
    # ANALYZE is the table owner's (tenants/rls.py): the app role would be skipped silently.
    with rls_owner(), connection.cursor() as cursor:
        # Fresh planner statistics, as autovacuum would have them on a real table.
        cursor.execute(f"ANALYZE {NOTES_TABLE}")


def _open(client, params) -> tuple[list[str], object]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(CHANGELIST, params)
    assert response.status_code == 200
    return [query["sql"] for query in captured.captured_queries], response


def _unbounded_counts(queries: list[str]) -> list[str]:
    """COUNT queries over the notes table without a WHERE clause."""
    return [
        sql
        for sql in queries
        if "COUNT(" in sql.upper() and NOTES_TABLE in sql and " WHERE " not in sql.upper()
    ]


PAGES = {
    "unfiltered": {},
    "filtered": {"category__exact": "observation", "priority": "3"},
    "by facility": "facility",
}


def _params(kind, patient) -> dict:
    if PAGES[kind] == "facility":
        return {"facility__id__exact": patient.facility_id}
    return PAGES[kind]


@pytest.mark.parametrize("kind", list(PAGES))
def test_changelist_queries_do_not_grow_with_the_table(staff_client, patient, kind):
    params = _params(kind, patient)
    _add_notes(patient, SMALL)
    staff_client.get(CHANGELIST, params)  # session and permission lookups settle
    small_queries, small = _open(staff_client, params)
    _add_notes(patient, LARGE - SMALL)
    large_queries, large = _open(staff_client, params)
    assert len(small_queries) == len(large_queries), large_queries
    assert len(small.context["cl"].result_list) == SMALL
    assert len(large.context["cl"].result_list) == NOTE_LIST_PER_PAGE


@pytest.mark.parametrize("kind", list(PAGES))
def test_changelist_never_counts_the_notes(staff_client, patient, kind):
    _add_notes(patient, LARGE)
    queries, _ = _open(staff_client, _params(kind, patient))
    assert [sql for sql in queries if "COUNT(" in sql.upper() and NOTES_TABLE in sql] == []
    assert _unbounded_counts(queries) == []
    # Nor a DISTINCT over it (Django's default filter for a field without choices).
    assert [sql for sql in queries if "DISTINCT" in sql and f'FROM "{NOTES_TABLE}"' in sql] == []
    assert any(sql.startswith("EXPLAIN") for sql in queries)


def test_facet_counts_are_not_offered_even_when_asked_for(staff_client, patient):
    _add_notes(patient, SMALL)
    queries, response = _open(staff_client, {"_facets": "True"})
    assert [sql for sql in queries if "COUNT(" in sql.upper() and NOTES_TABLE in sql] == []
    assert "Show counts" not in response.content.decode()


def test_second_page_shows_the_rest(staff_client, patient):
    _add_notes(patient, LARGE)
    _, response = _open(staff_client, {"p": 2})
    shown = [note.pk for note in response.context["cl"].result_list]
    oldest = CareNote.objects.order_by("created_at", "id")[: LARGE - NOTE_LIST_PER_PAGE]
    assert shown == [note.pk for note in reversed(list(oldest))]


def test_show_all_is_capped(staff_client, patient):
    _add_notes(patient, LARGE)
    _, response = _open(staff_client, {"all": ""})
    assert len(response.context["cl"].result_list) <= NOTE_LIST_MAX_SHOW_ALL


def test_estimated_count_is_the_planner_estimate_not_a_count(patient):
    _add_notes(patient, LARGE)
    paginator = EstimatedCountPaginator(CareNote.objects.all(), NOTE_LIST_PER_PAGE)
    with CaptureQueriesContext(connection) as captured:
        count = paginator.count
    assert count == _planned(LARGE)
    assert [query["sql"].split()[0] for query in captured.captured_queries] == ["EXPLAIN"]


def test_pages_past_the_estimate_are_empty_not_errors(patient):
    paginator = EstimatedCountPaginator(CareNote.objects.filter(pk__in=[]), NOTE_LIST_PER_PAGE)
    assert paginator.count == 0
    assert list(paginator.page(3).object_list) == []


@pytest.mark.parametrize("page", ["0", "-4", "abc", "9" * 30])
def test_odd_page_numbers_do_not_break_the_changelist(staff_client, patient, page):
    _add_notes(patient, SMALL)
    response = staff_client.get(CHANGELIST, {"p": page})
    assert response.status_code in {200, 302}
    assert PAGE_NUMBER_MAX * NOTE_LIST_PER_PAGE < 2**63


def test_search_by_patient_reference_or_author(staff_client, patient):
    _add_notes(patient, SMALL)
    other = CareNoteFactory(patient=PatientFactory(facility=patient.facility, reference="ZZ-9"))
    MembershipFactory(tenant=patient.tenant, user=other.author)
    _, by_reference = _open(staff_client, {"q": "ZZ-9"})
    _, by_author = _open(staff_client, {"q": other.author.username})
    assert [note.pk for note in by_reference.context["cl"].result_list] == [other.pk]
    assert [note.pk for note in by_author.context["cl"].result_list] == [other.pk]


def test_priority_filter(staff_client, patient):
    _add_notes(patient, SMALL)
    urgent = CareNoteFactory(patient=patient, priority=5)
    _, response = _open(staff_client, {"priority": "5"})
    assert [note.pk for note in response.context["cl"].result_list] == [urgent.pk]


def test_superuser_across_tenants_sees_newest_recorded_first(patient):
    # No index orders all tenants by created_at; the primary key orders them by id.
    _add_notes(patient, SMALL)
    client = _client_for(UserFactory(is_superuser=True, is_staff=True))
    _, response = _open(client, {})
    shown = [note.pk for note in response.context["cl"].result_list]
    assert shown == sorted(shown, reverse=True)
    assert response.context["cl"].queryset.query.order_by[0] in {"-pk", "-id"}


def test_unfiltered_count_query_shape_is_detected():
    # Guards the guard: the helper above must flag the query Django would otherwise run.
    assert _unbounded_counts(['SELECT COUNT(*) AS "__count" FROM "carenotes_carenote"']) != []
    assert re.search("EXPLAIN", "EXPLAIN (FORMAT JSON) SELECT 1")


# --- The count is an estimate, and says so -----------------------------------------------------


def _result_count_text(response) -> str:
    page = response.content.decode()
    return re.search(r'<span class="result-count">([^<]*)</span>', page).group(1).strip()


@pytest.mark.parametrize(
    ("count", "label"),
    [
        (0, "about 0"),
        (57, "about 57"),
        (100, "about 100"),
        (123_456, "about 120,000"),
        (100_001, "about 100,000"),
        (9_960_000, "about 10,000,000"),
    ],
)
def test_an_estimate_is_labelled_approximate(count, label):
    assert approximate_count_label(count) == label


def test_a_full_page_shows_the_estimate_as_approximate(staff_client, patient):
    _add_notes(patient, LARGE)
    _, response = _open(staff_client, {})
    assert response.context["cl"].result_count == _planned(LARGE)  # the planner's estimate
    assert _result_count_text(response) == f"about {_planned(LARGE)} care notes"


def test_a_page_that_is_not_full_shows_the_exact_count_and_no_pages_past_it(
    staff_client, patient, monkeypatch
):
    _add_notes(patient, SMALL)
    # A planner far off (a table not analysed yet): the rows on the page still settle it.
    monkeypatch.setattr("tenants.admin_paging.queryset_row_estimate", lambda queryset: 10_000)
    _, response = _open(staff_client, {})
    assert _result_count_text(response) == f"{SMALL} care notes"
    assert 'class="end"' not in response.content.decode()  # no page links
    assert "about" not in _result_count_text(response)


def test_a_full_page_offers_the_next_one_even_when_the_estimate_is_low(
    staff_client, patient, monkeypatch
):
    _add_notes(patient, LARGE)
    monkeypatch.setattr("tenants.admin_paging.queryset_row_estimate", lambda queryset: 3)
    _, response = _open(staff_client, {})
    assert _result_count_text(response) == f"about {NOTE_LIST_PER_PAGE + 1} care notes"
    assert '?p=2"' in response.content.decode()
    _, second = _open(staff_client, {"p": 2})
    assert _result_count_text(second) == f"{LARGE} care notes"  # the last page: exact


def test_search_results_are_counted_the_same_way(staff_client, patient):
    _add_notes(patient, LARGE)
    _, response = _open(staff_client, {"q": patient.reference})
    label = response.context["cl"].result_count_label
    assert label.startswith("about ")  # a full page of a search is still an estimate
    assert f"{label} results (" in response.content.decode()
    assert _result_count_text(response) == f"{label} care notes"


def test_select_all_across_pages_says_about(patient):
    _add_notes(patient, LARGE)
    superuser = _client_for(UserFactory(is_superuser=True, is_staff=True))  # has actions
    _, response = _open(superuser, {TENANT_FILTER_PARAM: patient.tenant_id})
    page = response.content.decode()
    assert f"Select all about {_planned(LARGE)} care notes" in page
    assert f"All about {_planned(LARGE)} selected" in page


# --- Columns that fit ------------------------------------------------------------------------


def test_no_column_is_kept_on_one_line(staff_client, patient):
    # Django keeps foreign-key and date cells on one line; with every column so, the author
    # column scrolled out of view at 1,400 px (system_tests/test_browser.py measures it).
    _add_notes(patient, SMALL)
    _, response = _open(staff_client, {})
    assert 'class="nowrap' not in response.content.decode()
    headers = re.findall(r'<th scope="col" class="column-(\w+)', response.content.decode())
    assert headers[:4] == ["id", "created_at_local", "resident", "author_name"]
