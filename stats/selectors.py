"""Reads for the analytics: one tenant's care notes of one local day, counted in PostgreSQL."""

from dataclasses import asdict, dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from carenotes.core.days import local_day_bounds
from carenotes.core.db import prepared_cursor, read_cursor
from carenotes.notes.models import PRIORITY_MAX, PRIORITY_MIN, CareNote, Category
from tenants.principal import TenantInfo

# The average is a ratio shown on a dashboard: two decimals, halves rounded away from zero
# (Decimal arithmetic, so 2.675 gives 2.68 rather than float rounding's 2.67).
AVG_DECIMAL_PLACES = 2
_AVG_QUANTUM = Decimal(1).scaleb(-AVG_DECIMAL_PLACES)

PRIORITY_KEYS = tuple(str(priority) for priority in range(PRIORITY_MIN, PRIORITY_MAX + 1))

# The two statements of care_stats_get, written out rather than built by the ORM on every
# uncached request. Both are answered by an index-only scan of the covering index
# (tenant_id, created_at) INCLUDE (facility_id, patient_id, category, priority);
# stats/tests/test_query_plan.py holds them to it.
#
# Every facility of the tenant (the default scope) needs no facility condition: composite
# foreign keys keep each note inside its tenant's facilities. Those statements take only
# scalar parameters and are prepared once per connection (carenotes.core.db.prepared_cursor).
# A named subset adds a condition on its ids, sent as literals on Django's cursor: as a
# parameter of a prepared (generic) plan the list is re-read for every row, which measured
# +1.1 ms per statement on a 10,000-note day.
_DAY_NOTES = (
    f"FROM {CareNote._meta.db_table} "
    "WHERE tenant_id = %(tenant_id)s::bigint "
    "AND created_at >= %(start)s AND created_at < %(end)s"
)
_IN_FACILITIES = " AND facility_id = ANY(%(facility_ids)s::bigint[])"
_GROUPS = "SELECT facility_id, category, priority, COUNT(*) "
_BY_GROUP = " GROUP BY facility_id, category, priority"
# COUNT(*), not COUNT(id): id is not in the covering index and would force heap reads.
STATS_COUNTS_SQL = _GROUPS + _DAY_NOTES + _BY_GROUP
STATS_PATIENTS_SQL = "SELECT COUNT(DISTINCT patient_id) " + _DAY_NOTES
STATS_COUNTS_IN_FACILITIES_SQL = _GROUPS + _DAY_NOTES + _IN_FACILITIES + _BY_GROUP
STATS_PATIENTS_IN_FACILITIES_SQL = STATS_PATIENTS_SQL + _IN_FACILITIES


@dataclass(frozen=True)
class CareStats:
    """The daily numbers of one tenant for one local day and one facility scope."""

    tenant_id: int
    date: date
    timezone: str
    facility_ids: tuple[int, ...]
    total_notes: int
    by_category: dict[str, int]
    by_priority: dict[str, int]
    by_facility: dict[str, int]
    avg_notes_per_patient: float

    def as_dict(self) -> dict:
        """Return the fields as a plain dict (what the API's output serializer reads)."""
        return asdict(self)

    def as_json(self) -> dict:
        """Return the API's JSON body: ``as_dict`` with the date as ISO text, lists as lists.

        The same data the view's OutputSerializer produces (a test holds them equal), built
        without instantiating serializer fields on every uncached request.
        """
        return {
            **self.as_dict(),
            "date": self.date.isoformat(),
            "facility_ids": list(self.facility_ids),
        }


def avg_notes_per_patient(*, total_notes: int, patients: int) -> float:
    """Return notes per distinct patient rounded to AVG_DECIMAL_PLACES, 0 when no patient."""
    if patients == 0:
        return 0.0
    ratio = Decimal(total_notes) / Decimal(patients)
    return float(ratio.quantize(_AVG_QUANTUM, rounding=ROUND_HALF_UP))


def care_stats_build(
    *,
    tenant: TenantInfo,
    day: date,
    facility_ids: tuple[int, ...],
    counts: dict[tuple[int, str, int], int],
    patients: int,
) -> CareStats:
    """Return CareStats from note counts per (facility, category, priority), zeros filled in.

    A facility with notes that ``facility_ids`` does not list (the tenant's cached facts
    lagging behind a new facility) is counted and listed, so the numbers stay exact.
    """
    by_category = dict.fromkeys(Category.values, 0)
    by_priority = dict.fromkeys(PRIORITY_KEYS, 0)
    unlisted = {facility_id for facility_id, _, _ in counts} - set(facility_ids)
    if unlisted:
        facility_ids = tuple(sorted({*facility_ids, *unlisted}))
    by_facility = {str(facility_id): 0 for facility_id in facility_ids}
    for (facility_id, category, priority), notes in counts.items():
        by_category[category] += notes
        by_priority[str(priority)] += notes
        by_facility[str(facility_id)] += notes
    total = sum(counts.values())
    return CareStats(
        tenant_id=tenant.id,
        date=day,
        timezone=tenant.timezone,
        facility_ids=facility_ids,
        total_notes=total,
        by_category=by_category,
        by_priority=by_priority,
        by_facility=by_facility,
        avg_notes_per_patient=avg_notes_per_patient(total_notes=total, patients=patients),
    )


def care_stats_get(
    *, tenant: TenantInfo, day: date, facility_ids: tuple[int, ...] | None = None
) -> CareStats:
    """Return the tenant's note counts for local ``day``, in every facility or in a subset.

    ``facility_ids``: None for every facility of the tenant, else a sorted, validated subset.
    Two statements, both index-only scans of ``carenote_stats_covering_idx``: counts grouped
    by (facility, category, priority) — at most facilities x 3 x 5 rows — and the number of
    distinct patients (skipped when there is no note). Nothing per note reaches Python.
    """
    start, end = local_day_bounds(day=day, timezone_name=tenant.timezone)
    params = {"tenant_id": tenant.id, "start": start, "end": end}
    if facility_ids is None:
        statements = (STATS_COUNTS_SQL, STATS_PATIENTS_SQL)
        scope = tuple(sorted(tenant.facility_ids))
        cursor = prepared_cursor()
    else:
        statements = (STATS_COUNTS_IN_FACILITIES_SQL, STATS_PATIENTS_IN_FACILITIES_SQL)
        scope = facility_ids
        params["facility_ids"] = list(facility_ids)
        cursor = read_cursor()
    with cursor:
        cursor.execute(statements[0], params)
        counts = {
            (facility_id, category, priority): n for facility_id, category, priority, n in cursor
        }
        patients = 0
        if counts:
            cursor.execute(statements[1], params)
            (patients,) = cursor.fetchone()
    return care_stats_build(
        tenant=tenant, day=day, facility_ids=scope, counts=counts, patients=patients
    )
