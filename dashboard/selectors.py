"""Reads of the dashboard: the API's range answers, the tiles and charts made from them, the
high-priority notes and the rows of the exports.

Every number comes from the range answer the API serves for the same scope
(``/api/care-stats/?tenant_id=…&date_from=…&date_to=…&facility_ids=…``), through the same
cached function, so a page and the API never disagree and a refresh is a cache hit.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import QuerySet

from carenotes.core.colocation import colocated
from carenotes.core.days import local_day_bounds
from carenotes.notes.models import PRIORITY_MAX, CareNote, Category
from carenotes.notes.selectors import NoteCursor, note_page
from dashboard.params import DashboardScope
from stats.cache import care_stats_range_get_cached
from stats.selectors import PRIORITY_KEYS, ROLLUP_COUNTS_TABLE, CareRangeStats
from tenants.models import Facility
from tenants.principal import TenantInfo

# Notes of these priorities are "high priority" (tile, feed, export).
HIGH_PRIORITY_MIN = 4
HIGH_PRIORITY_KEYS = tuple(str(p) for p in range(HIGH_PRIORITY_MIN, PRIORITY_MAX + 1))
FEED_PAGE_SIZE = 10
EXPORT_BATCH_SIZE = 1000


def range_answer_get(
    *, tenant: TenantInfo, date_from: date, date_to: date, facility_ids: tuple[int, ...] | None
) -> dict:
    """Return the API's range answer (its JSON body) for the scope, from the stats cache."""
    return care_stats_range_get_cached(
        tenant=tenant,
        date_from=date_from,
        date_to=date_to,
        facility_ids=facility_ids,
        serialize=CareRangeStats.as_json,
    ).data


def scope_answer_get(scope: DashboardScope) -> dict:
    """Return the API's range answer for a dashboard scope."""
    return range_answer_get(
        tenant=scope.tenant,
        date_from=scope.date_from,
        date_to=scope.date_to,
        facility_ids=scope.facility_ids,
    )


def high_priority_notes(answer: dict) -> int:
    """Return the number of notes of priority HIGH_PRIORITY_MIN or more in a range answer."""
    return sum(answer["by_priority"][key] for key in HIGH_PRIORITY_KEYS)


@dataclass(frozen=True)
class Tile:
    """One headline number, its value in the previous period of the same length, the change."""

    key: str
    label: str
    value: int | float
    previous: int | float

    @property
    def change(self) -> int | float:
        change = self.value - self.previous
        return round(change, 2) if isinstance(change, float) else change

    @property
    def change_percent(self) -> float | None:
        """Return the change in per cent of the previous value, None when that was 0."""
        if not self.previous:
            return None
        return round(100 * (self.value - self.previous) / self.previous, 1)

    @property
    def direction(self) -> str:
        return "up" if self.change > 0 else "down" if self.change < 0 else "same"

    def as_json(self) -> dict:
        return {
            "key": self.key,
            "label": self.label,
            "value": self.value,
            "previous": self.previous,
            "change": self.change,
            "change_percent": self.change_percent,
        }


def tiles_build(*, current: dict, previous: dict) -> list[Tile]:
    """Return the four tiles from the range answers of the period and the one before it."""
    return [
        Tile("total_notes", "Care notes", current["total_notes"], previous["total_notes"]),
        Tile("patients", "Residents with notes", current["patients"], previous["patients"]),
        Tile(
            "avg_notes_per_patient",
            "Notes per resident",
            current["avg_notes_per_patient"],
            previous["avg_notes_per_patient"],
        ),
        Tile(
            "high_priority",
            f"High-priority notes ({HIGH_PRIORITY_MIN}-{PRIORITY_MAX})",
            high_priority_notes(current),
            high_priority_notes(previous),
        ),
    ]


def facility_names_get(*, tenant: TenantInfo) -> dict[int, str]:
    """Return the tenant's facility names by id, ordered by name."""
    rows = Facility.objects.filter(tenant_id=tenant.id).order_by("name", "id")
    return dict(rows.values_list("id", "name"))


def charts_build(*, answer: dict, facility_names: dict[int, str]) -> dict:
    """Return the three charts' data (labels and series) taken from one range answer."""
    days = answer["by_day"]
    return {
        "trend": {
            "labels": [day["date"] for day in days],
            "series": [
                {
                    "key": category.value,
                    "label": category.label,
                    "data": [day["by_category"][category.value] for day in days],
                }
                for category in Category
            ],
        },
        "priority": {
            "labels": [f"Priority {key}" for key in PRIORITY_KEYS],
            "keys": list(PRIORITY_KEYS),
            "data": [answer["by_priority"][key] for key in PRIORITY_KEYS],
        },
        "facility": {
            "labels": [
                facility_names.get(int(fid), f"Facility {fid}") for fid in answer["by_facility"]
            ],
            "keys": list(answer["by_facility"]),
            "data": list(answer["by_facility"].values()),
        },
    }


def note_high_priority_list(*, scope: DashboardScope) -> QuerySet[CareNote]:
    """Return the scope's notes of priority HIGH_PRIORITY_MIN or more, newest first.

    Its days are the scope's tenant-local days, as in the range answer.
    """
    tenant = scope.tenant
    start, _ = local_day_bounds(day=scope.date_from, timezone_name=tenant.timezone)
    _, end = local_day_bounds(day=scope.date_to, timezone_name=tenant.timezone)
    notes = CareNote.objects.filter(
        tenant_id=tenant.id,
        priority__gte=HIGH_PRIORITY_MIN,
        created_at__gte=start,
        created_at__lt=end,
    )
    if scope.facility_ids is not None:
        notes = notes.filter(facility_id__in=scope.facility_ids)
    notes = colocated(notes, "patient", "facility")
    return notes.select_related("author", "patient", "facility").order_by("-created_at", "-id")


def note_high_priority_page(
    *, scope: DashboardScope, cursor: NoteCursor | None, page_size: int = FEED_PAGE_SIZE
) -> tuple[list[CareNote], NoteCursor | None]:
    """Return one page of the high-priority feed and the next page's cursor (or None)."""
    return note_page(
        queryset=note_high_priority_list(scope=scope), cursor=cursor, page_size=page_size
    )


def note_high_priority_iter(*, scope: DashboardScope) -> Iterator[CareNote]:
    """Yield every high-priority note of the scope, newest first, EXPORT_BATCH_SIZE at a time."""
    cursor = None
    while True:
        rows, cursor = note_high_priority_page(
            scope=scope, cursor=cursor, page_size=EXPORT_BATCH_SIZE
        )
        yield from rows
        if cursor is None:
            return


# The day rollups the range answer is summed from, one row per (day, facility, category,
# priority) with notes: the export's rows add up to the answer's by_day and by_facility.
_COUNT_ROWS_SQL = (
    f"SELECT day, facility_id, category, priority, notes FROM {ROLLUP_COUNTS_TABLE} "
    "WHERE tenant_id = %(tenant_id)s::bigint "
    "AND day >= %(date_from)s::date AND day <= %(date_to)s::date AND notes > 0{facilities} "
    "ORDER BY day, facility_id, category, priority"
)


@dataclass(frozen=True)
class CountRow:
    """The notes of one local day, facility, category and priority."""

    day: date
    facility_id: int
    category: str
    priority: int
    notes: int


def count_rows_get(*, scope: DashboardScope) -> list[CountRow]:
    """Return the scope's note counts per (day, facility, category, priority), zeros left out."""
    params = {
        "tenant_id": scope.tenant.id,
        "date_from": scope.date_from,
        "date_to": scope.date_to,
    }
    facilities = ""
    if scope.facility_ids is not None:
        facilities = " AND facility_id = ANY(%(facility_ids)s::bigint[])"
        params["facility_ids"] = list(scope.facility_ids)
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_ROWS_SQL.format(facilities=facilities), params)
        return [CountRow(*row) for row in cursor.fetchall()]


def local_time(value: datetime | None, *, tenant: TenantInfo) -> datetime | None:
    """Return ``value`` in the tenant's time zone (None stays None)."""
    return value.astimezone(ZoneInfo(tenant.timezone)) if value is not None else None
