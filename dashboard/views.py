"""Pages of the managers' dashboard: the tenant picker, the dashboard, its lists and exports.

Thin like the API views: parse the URL (dashboard.params), check access (dashboard.access),
call the selectors, render. Every page sends the dashboard's Content-Security-Policy.
"""

import csv
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from http import HTTPStatus
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from audit.services import NoteTally, audit_request_read
from carenotes.core.observability import request_tenant_tag
from carenotes.notes.selectors import (
    ATTENTION_HOURS_MAX,
    ATTENTION_HOURS_MIN,
    patient_attention_list,
)
from dashboard.access import DashboardAccess, dashboard_access_get, dashboard_tenant_list
from dashboard.csp import csp_protect
from dashboard.params import (
    CURSOR_PARAM,
    CUSTOM_PERIOD,
    DashboardParamError,
    DashboardScope,
    attention_cursor_parse,
    dashboard_scope_parse,
    note_cursor_parse,
)
from dashboard.selectors import (
    HIGH_PRIORITY_MIN,
    charts_build,
    count_rows_get,
    facility_names_get,
    local_time,
    note_high_priority_iter,
    note_high_priority_page,
    scope_answer_get,
    tiles_build,
)
from stats.ranges import STATS_RANGE_MAX_DAYS, Period
from tenants.rls import db_scope, principal_scope
from tenants.selectors import principal_get_for_user

# Seconds between two refreshes of an open dashboard tab (only while it is visible); each one
# re-reads the page, whose numbers the stats cache answers.
DASHBOARD_REFRESH_SECONDS = 60
# Residents listed on the dashboard itself; the attention page pages through the rest.
ATTENTION_ON_DASHBOARD = 25
ATTENTION_PAGE_SIZE = 100
PERIOD_CHOICES = [(period.value, period.value.replace("_", " ").capitalize()) for period in Period]
PERIOD_CHOICES.append((CUSTOM_PERIOD, "Custom range"))


def _error_page(request, status: HTTPStatus, message: str, param: str | None = None):
    context = {"status": status, "title": status.phrase, "message": message, "param": param}
    return render(request, "dashboard/error.html", context, status=status)


def dashboard_page(view: Callable) -> Callable:
    """Return ``view`` signed-in only, its refusals as pages (400, 403, 404), with the CSP."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except DashboardParamError as exc:
            return _error_page(request, HTTPStatus.BAD_REQUEST, exc.message, param=exc.param)
        except PermissionDenied as exc:
            return _error_page(request, HTTPStatus.FORBIDDEN, str(exc) or "Not allowed.")
        except Http404:
            return _error_page(
                request, HTTPStatus.NOT_FOUND, "There is no such dashboard, or it is not yours."
            )

    return csp_protect(login_required(wrapped))


def _access(request: HttpRequest, tenant_id: int) -> DashboardAccess:
    principal = principal_get_for_user(user=request.user)
    access = dashboard_access_get(principal=principal, tenant_id=tenant_id)
    request_tenant_tag(request, access.tenant.id)
    return access


def _page_context(access: DashboardAccess, scope: DashboardScope) -> dict:
    tenant = access.tenant
    facility_names = facility_names_get(tenant=tenant)
    return {
        "access": access,
        "tenant": tenant,
        "scope": scope,
        "query": scope.query_string(),
        "facilities": [
            {
                "id": facility_id,
                "name": name,
                "selected": scope.facility_ids is not None and facility_id in scope.facility_ids,
            }
            for facility_id, name in facility_names.items()
        ],
        "facility_names": facility_names,
        "period_choices": PERIOD_CHOICES,
        "hours_min": ATTENTION_HOURS_MIN,
        "hours_max": ATTENTION_HOURS_MAX,
        "max_days": STATS_RANGE_MAX_DAYS,
        "high_priority_min": HIGH_PRIORITY_MIN,
        "now": timezone.now(),
    }


@dashboard_page
def tenant_pick(request: HttpRequest) -> HttpResponse:
    """The tenants whose dashboard the user may see; straight to it when there is one."""
    principal = principal_get_for_user(user=request.user)
    tenants = dashboard_tenant_list(user=request.user, principal=principal)
    if not tenants:
        raise PermissionDenied(
            "The dashboard is for the managers and admins of a tenant, and your account is "
            "neither in any tenant. Ask an admin of your tenant for the manager role."
        )
    if len(tenants) == 1 and not principal.is_superuser:
        return redirect("dashboard:tenant", tenant_id=tenants[0].pk)
    choices = [(tenant, principal.role_in(tenant.pk)) for tenant in tenants]
    return render(request, "dashboard/pick.html", {"choices": choices, "principal": principal})


@dashboard_page
def tenant_dashboard(request: HttpRequest, tenant_id: int) -> HttpResponse:
    """One tenant's dashboard for the scope its URL names."""
    access = _access(request, tenant_id)
    scope = dashboard_scope_parse(params=request.GET, tenant=access.tenant)
    context = _page_context(access, scope)
    current = scope_answer_get(scope)
    previous_scope = scope.previous()
    previous = scope_answer_get(previous_scope)
    tiles = tiles_build(current=current, previous=previous)
    charts = charts_build(answer=current, facility_names=context["facility_names"])
    attention, attention_next = patient_attention_list(
        tenant=access.tenant,
        facility_ids=scope.facility_ids,
        hours=scope.hours,
        now=context["now"],
        page_size=ATTENTION_ON_DASHBOARD,
    )
    feed, feed_next = note_high_priority_page(scope=scope, cursor=None)
    # The page shows the feed's first notes, bodies included: a read like the feed's own.
    audit_request_read(request, tenant_id=access.tenant.id, note_ids=[note.pk for note in feed])
    data = {
        "tenant_id": access.tenant.id,
        "timezone": access.tenant.timezone,
        "date_from": scope.date_from.isoformat(),
        "date_to": scope.date_to.isoformat(),
        "facility_ids": list(scope.facility_ids) if scope.facility_ids is not None else None,
        "api": current,
        "previous": previous,
        "tiles": [tile.as_json() for tile in tiles],
        "charts": charts,
        "attention_patient_ids": [resident.patient_id for resident in attention],
        "refresh_seconds": DASHBOARD_REFRESH_SECONDS,
    }
    context.update(
        tiles=tiles,
        charts=charts,
        **_chart_tables(charts),
        previous_scope=previous_scope,
        attention=_attention_rows(attention, access),
        attention_more=attention_next is not None,
        feed=_feed_rows(feed, access),
        feed_more=feed_next is not None,
        data=data,
    )
    return render(request, "dashboard/dashboard.html", context)


def _pairs(chart: dict) -> list[tuple[str, int]]:
    return list(zip(chart["labels"], chart["data"], strict=True))


def _chart_tables(charts: dict) -> dict:
    """Return each chart's numbers as table rows (the accessible form of the chart)."""
    trend = charts["trend"]
    trend_rows = []
    for index, label in enumerate(trend["labels"]):
        values = [series["data"][index] for series in trend["series"]]
        trend_rows.append({"date": label, "values": values, "total": sum(values)})
    return {
        "trend_rows": trend_rows,
        "priority_rows": _pairs(charts["priority"]),
        "facility_rows": _pairs(charts["facility"]),
    }


def _attention_rows(residents, access: DashboardAccess) -> list[dict]:
    now = timezone.now()
    rows = []
    for resident in residents:
        last = local_time(resident.last_note_at, tenant=access.tenant)
        hours = None if last is None else int((now - last).total_seconds() // 3600)
        rows.append({"resident": resident, "last_note_at": last, "hours_since": hours})
    return rows


def _feed_rows(notes, access: DashboardAccess) -> list[dict]:
    link_admin = access.is_tenant_admin
    return [
        {
            "note": note,
            "created_at": local_time(note.created_at, tenant=access.tenant),
            "admin_url": reverse("admin:carenotes_carenote_change", args=[note.pk])
            if link_admin
            else None,
        }
        for note in notes
    ]


@dashboard_page
def high_priority_feed(request: HttpRequest, tenant_id: int) -> HttpResponse:
    """The scope's high-priority notes, newest first, a page at a time."""
    access = _access(request, tenant_id)
    scope = dashboard_scope_parse(params=request.GET, tenant=access.tenant, extra=(CURSOR_PARAM,))
    cursor = note_cursor_parse(request.GET)
    notes, next_cursor = note_high_priority_page(scope=scope, cursor=cursor)
    audit_request_read(request, tenant_id=access.tenant.id, note_ids=[note.pk for note in notes])
    context = _page_context(access, scope)
    context.update(
        feed=_feed_rows(notes, access),
        next_query=_with_cursor(scope, next_cursor.encode()) if next_cursor else None,
    )
    return render(request, "dashboard/high_priority.html", context)


@dashboard_page
def attention_list(request: HttpRequest, tenant_id: int) -> HttpResponse:
    """The residents with no note in the scope's last N hours, a page at a time."""
    access = _access(request, tenant_id)
    scope = dashboard_scope_parse(params=request.GET, tenant=access.tenant, extra=(CURSOR_PARAM,))
    cursor = attention_cursor_parse(request.GET)
    residents, next_cursor = patient_attention_list(
        tenant=access.tenant,
        facility_ids=scope.facility_ids,
        hours=scope.hours,
        now=timezone.now(),
        cursor=cursor,
        page_size=ATTENTION_PAGE_SIZE,
    )
    context = _page_context(access, scope)
    context.update(
        attention=_attention_rows(residents, access),
        next_query=_with_cursor(scope, next_cursor.encode()) if next_cursor else None,
    )
    return render(request, "dashboard/attention.html", context)


def _with_cursor(scope: DashboardScope, cursor: str) -> str:
    return urlencode([*scope.query_items(), (CURSOR_PARAM, cursor)])


# --- exports ----------------------------------------------------------------------------------

# Cells a spreadsheet would read as a formula are prefixed with an apostrophe (OWASP's advice
# against CSV injection); only free text (names, bodies) can start with one.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a stream."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterable[Iterable]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow([_cell(value) for value in row])


def export_filename(scope: DashboardScope, what: str) -> str:
    """Return the export's file name: the tenant, the range and what it holds."""
    tenant = slugify(scope.tenant.name) or f"tenant-{scope.tenant.id}"
    return f"{tenant}-{scope.date_from.isoformat()}-to-{scope.date_to.isoformat()}-{what}.csv"


def _csv_response(lines: Iterator[str], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


COUNTS_HEADER = ("date", "facility_id", "facility", "category", "priority", "notes")
HIGH_PRIORITY_HEADER = (
    "note_id",
    "created_at",
    "facility_id",
    "facility",
    "patient_id",
    "patient_reference",
    "patient_name",
    "author",
    "category",
    "priority",
    "body",
)


@dashboard_page
def export_counts(request: HttpRequest, tenant_id: int) -> StreamingHttpResponse:
    """CSV of the scope's notes per day, facility, category and priority (the API's numbers)."""
    access = _access(request, tenant_id)
    scope = dashboard_scope_parse(params=request.GET, tenant=access.tenant)
    names = facility_names_get(tenant=access.tenant)
    rows = count_rows_get(scope=scope)  # at most days x facilities x 15 rows: read now
    # No body, but the notes of a scope counted: recorded with their number.
    audit_request_read(request, tenant_id=access.tenant.id, note_count=sum(r.notes for r in rows))
    lines = _csv_lines(
        [
            COUNTS_HEADER,
            *(
                (
                    row.day.isoformat(),
                    row.facility_id,
                    names.get(row.facility_id, ""),
                    row.category,
                    row.priority,
                    row.notes,
                )
                for row in rows
            ),
        ]
    )
    return _csv_response(lines, export_filename(scope, "counts"))


@dashboard_page
def export_high_priority(request: HttpRequest, tenant_id: int) -> StreamingHttpResponse:
    """CSV of the scope's high-priority notes, newest first, streamed in batches."""
    access = _access(request, tenant_id)
    scope = dashboard_scope_parse(params=request.GET, tenant=access.tenant)

    def rows() -> Iterator[tuple]:
        yield HIGH_PRIORITY_HEADER
        sent = NoteTally()
        # The stream is read after the view (and the request's row-level security scope)
        # has returned: the caller's scope goes along explicitly.
        with db_scope(principal_scope(access.principal)):
            try:
                for note in note_high_priority_iter(scope=scope):
                    sent.add(note.pk)
                    yield (
                        note.pk,
                        local_time(note.created_at, tenant=access.tenant).isoformat(),
                        note.facility_id,
                        note.facility.name,
                        note.patient_id,
                        note.patient.reference,
                        note.patient.display_name,
                        note.author.get_username(),
                        note.category,
                        note.priority,
                        note.body,
                    )
            finally:
                # What was sent, also when the download stopped early (the stream is closed).
                audit_request_read(
                    request, tenant_id=access.tenant.id, note_ids=sent.ids, note_count=sent.count
                )

    return _csv_response(_csv_lines(rows()), export_filename(scope, "high-priority"))
