"""Reads for the analytics: one tenant's care notes of a local day or a range of days, counted.

A day is counted from the notes themselves (the covering index); a range from the day
rollups that triggers keep exact on every write (stats migrations 0001-0003).
"""

from dataclasses import asdict, dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection

from carenotes.core.days import local_day_bounds
from carenotes.core.db import prepared_cursor, read_cursor
from carenotes.notes.models import PRIORITY_MAX, PRIORITY_MIN, CareNote, Category, Patient
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
    patients: int
    avg_notes_per_patient: float

    def as_dict(self) -> dict:
        """Return the fields as a plain dict (what the API's output serializer reads)."""
        return asdict(self)

    def as_json(self) -> dict:
        """Return the API's JSON body: ``as_dict`` with the date as ISO text, lists as lists.

        The same data the view's OutputSerializer produces (a test holds them equal), built
        without instantiating serializer fields on every uncached request, nor deep-copying
        the counts as ``as_dict`` (dataclasses.asdict) does: ~440 calls per answer.
        """
        return {
            "tenant_id": self.tenant_id,
            "date": self.date.isoformat(),
            **_counts_json(self),
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
        patients=patients,
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


# --- ranges of days, from the rollups --------------------------------------------------------

# The day rollups (stats migrations 0001-0003; the migrations freeze the same names).
ROLLUP_COUNTS_TABLE = "stats_day_counts"
ROLLUP_RESIDENTS_TABLE = "stats_day_residents"
ROLLUP_TABLES = (ROLLUP_COUNTS_TABLE, ROLLUP_RESIDENTS_TABLE)

# The two statements of care_stats_range_get, index-only scans of the rollups' primary keys
# (stats/tests/test_query_plan.py). The counts come back summed in one pass (GROUPING SETS)
# as one row per day — its notes per category, then per priority, in PRIORITY_KEYS order —
# and one row per facility (day NULL; its total is the sum of its category columns). A row
# per (day, category, priority) instead would be fifteen times as many rows to decode.
_RANGE_ROWS = (
    f"FROM {ROLLUP_COUNTS_TABLE} "
    "WHERE tenant_id = %(tenant_id)s::bigint "
    "AND day >= %(date_from)s::date AND day <= %(date_to)s::date"
)
_PER_CATEGORY = [f"SUM(notes) FILTER (WHERE category = '{c}')" for c in Category.values]
_PER_PRIORITY = [f"SUM(notes) FILTER (WHERE priority = {p})" for p in PRIORITY_KEYS]
_RANGE_GROUPS = (
    "SELECT day, facility_id, " + ", ".join(_PER_CATEGORY + _PER_PRIORITY) + " " + _RANGE_ROWS
)
_BY_DAY_AND_FACILITY = " GROUP BY GROUPING SETS ((day), (facility_id))"
# Distinct residents do not add up over days: a resident of the tenant counts when it has a
# rollup row in the range. One probe of (tenant_id, patient_id, day) per resident, written
# as a LATERAL ... LIMIT 1 so that the plan is that nested loop whatever the statistics say
# (a table just bulk-loaded has none yet, and a hash join over every row of the range was
# then chosen).
_RESIDENTS_NOTED = (
    f"SELECT COUNT(*) FROM {Patient._meta.db_table} AS p CROSS JOIN LATERAL ("
    f"SELECT 1 FROM {ROLLUP_RESIDENTS_TABLE} AS r "
    "WHERE r.tenant_id = %(tenant_id)s::bigint AND r.patient_id = p.id "
    "AND r.day >= %(date_from)s::date AND r.day <= %(date_to)s::date"
)
_FIRST_NOTED = " LIMIT 1) AS noted WHERE p.tenant_id = %(tenant_id)s::bigint"
STATS_RANGE_COUNTS_SQL = _RANGE_GROUPS + _BY_DAY_AND_FACILITY
STATS_RANGE_PATIENTS_SQL = _RESIDENTS_NOTED + _FIRST_NOTED
STATS_RANGE_COUNTS_IN_FACILITIES_SQL = _RANGE_GROUPS + _IN_FACILITIES + _BY_DAY_AND_FACILITY
STATS_RANGE_PATIENTS_IN_FACILITIES_SQL = (
    _RESIDENTS_NOTED + " AND r.facility_id = ANY(%(facility_ids)s::bigint[])" + _FIRST_NOTED
)


@dataclass(frozen=True)
class CareDayCounts:
    """The notes of one local day of a range, by category and priority."""

    date: date
    total_notes: int
    by_category: dict[str, int]
    by_priority: dict[str, int]

    def as_json(self) -> dict:
        """Return the day's entry of a range answer's ``by_day``."""
        return {
            "date": self.date.isoformat(),
            "total_notes": self.total_notes,
            "by_category": self.by_category,
            "by_priority": self.by_priority,
        }


@dataclass(frozen=True)
class CareRangeStats:
    """The numbers of one tenant over the local days date_from..date_to (inclusive)."""

    tenant_id: int
    date_from: date
    date_to: date
    timezone: str
    facility_ids: tuple[int, ...]
    total_notes: int
    by_category: dict[str, int]
    by_priority: dict[str, int]
    by_facility: dict[str, int]
    patients: int
    avg_notes_per_patient: float
    by_day: tuple[CareDayCounts, ...]

    def as_dict(self) -> dict:
        """Return the fields as a plain dict (what the API's output serializer reads)."""
        return asdict(self)

    def as_json(self) -> dict:
        """Return the API's JSON body (a test holds it equal to the output serializer's)."""
        return {
            "tenant_id": self.tenant_id,
            "date_from": self.date_from.isoformat(),
            "date_to": self.date_to.isoformat(),
            **_counts_json(self),
            "by_day": [day.as_json() for day in self.by_day],
        }


def _counts_json(stats: "CareStats | CareRangeStats") -> dict:
    """Return the fields a day answer and a range answer share after their days, in order."""
    return {
        "timezone": stats.timezone,
        "facility_ids": list(stats.facility_ids),
        "total_notes": stats.total_notes,
        "by_category": stats.by_category,
        "by_priority": stats.by_priority,
        "by_facility": stats.by_facility,
        "patients": stats.patients,
        "avg_notes_per_patient": stats.avg_notes_per_patient,
    }


def range_days(*, date_from: date, date_to: date) -> list[date]:
    """Return every date from ``date_from`` to ``date_to``, both included."""
    return [date_from + timedelta(days=n) for n in range((date_to - date_from).days + 1)]


def care_stats_range_build(
    *,
    tenant: TenantInfo,
    date_from: date,
    date_to: date,
    facility_ids: tuple[int, ...],
    day_counts: dict[date, tuple[int, ...]],
    facility_counts: dict[int, int],
    patients: int,
) -> CareRangeStats:
    """Return CareRangeStats from each day's counts and each facility's total.

    ``day_counts``: per day, its notes per category (Category.values order) then per priority
    (PRIORITY_KEYS order). Every day of the range is listed, zeros included; a facility with
    notes that ``facility_ids`` does not list is counted and listed, as in care_stats_build.
    """
    categories = len(Category.values)
    zeros = (0,) * (categories + len(PRIORITY_KEYS))
    by_day = []
    for day in range_days(date_from=date_from, date_to=date_to):
        counts = day_counts.get(day, zeros)
        by_day.append(
            CareDayCounts(
                date=day,
                total_notes=sum(counts[:categories]),
                by_category=dict(zip(Category.values, counts[:categories], strict=True)),
                by_priority=dict(zip(PRIORITY_KEYS, counts[categories:], strict=True)),
            )
        )
    unlisted = set(facility_counts) - set(facility_ids)
    if unlisted:
        facility_ids = tuple(sorted({*facility_ids, *unlisted}))
    by_facility = {
        str(facility_id): facility_counts.get(facility_id, 0) for facility_id in facility_ids
    }
    sums = [sum(column) for column in zip(zeros, *day_counts.values(), strict=True)]
    total = sum(sums[:categories])
    return CareRangeStats(
        tenant_id=tenant.id,
        date_from=date_from,
        date_to=date_to,
        timezone=tenant.timezone,
        facility_ids=facility_ids,
        total_notes=total,
        by_category=dict(zip(Category.values, sums[:categories], strict=True)),
        by_priority=dict(zip(PRIORITY_KEYS, sums[categories:], strict=True)),
        by_facility=by_facility,
        patients=patients,
        avg_notes_per_patient=avg_notes_per_patient(total_notes=total, patients=patients),
        by_day=tuple(by_day),
    )


def care_stats_range_get(
    *,
    tenant: TenantInfo,
    date_from: date,
    date_to: date,
    facility_ids: tuple[int, ...] | None = None,
) -> CareRangeStats:
    """Return the tenant's note counts over local days ``date_from``..``date_to`` (inclusive).

    ``facility_ids``: None for every facility of the tenant, else a sorted, validated subset.
    Two statements over the day rollups, both index-only scans: the counts summed per day and
    per facility — at most days + facilities rows — and the number of distinct residents
    with a note in the range (one probe per resident of the tenant; skipped when there is
    no note).
    The range's length is the caller's to bound (stats.ranges.STATS_RANGE_MAX_DAYS).
    """
    params = {"tenant_id": tenant.id, "date_from": date_from, "date_to": date_to}
    if facility_ids is None:
        statements = (STATS_RANGE_COUNTS_SQL, STATS_RANGE_PATIENTS_SQL)
        scope = tuple(sorted(tenant.facility_ids))
        cursor = prepared_cursor()
    else:
        statements = (STATS_RANGE_COUNTS_IN_FACILITIES_SQL, STATS_RANGE_PATIENTS_IN_FACILITIES_SQL)
        scope = facility_ids
        params["facility_ids"] = list(facility_ids)
        cursor = read_cursor()
    day_counts, facility_counts = {}, {}
    categories = len(Category.values)
    with cursor:
        cursor.execute(statements[0], params)
        for day, facility_id, *counts in cursor:
            counts = tuple(notes or 0 for notes in counts)  # SUM ... FILTER of no row: NULL
            if facility_id is None:
                day_counts[day] = counts
            else:
                facility_counts[facility_id] = sum(counts[:categories])
        patients = 0
        if facility_counts:
            cursor.execute(statements[1], params)
            (patients,) = cursor.fetchone()
    return care_stats_range_build(
        tenant=tenant,
        date_from=date_from,
        date_to=date_to,
        facility_ids=scope,
        day_counts=day_counts,
        facility_counts=facility_counts,
        patients=patients,
    )


# --- the rollups against the notes (manage.py stats_rollups --check) --------------------------

# What the rollups must hold, recomputed from the notes in SQL written apart from the
# triggers' (stats 0003), and compared row by row. One statement, so one snapshot: a write
# commits its note and its rollup change together, so a concurrent write is either in both
# sides or in neither, and no lock is needed.
_EXPECTED_FROM_NOTES = (
    "SELECT n.tenant_id, (n.created_at AT TIME ZONE t.timezone)::date AS day, {columns}, "
    "COUNT(*) AS notes "
    f"FROM {CareNote._meta.db_table} AS n JOIN tenants_tenant AS t ON t.id = n.tenant_id "
    "WHERE %(tenant_id)s::bigint IS NULL OR n.tenant_id = %(tenant_id)s::bigint "
    "GROUP BY n.tenant_id, day, {columns}"
)
_ROLLUP_ROWS = (
    "SELECT * FROM {table} WHERE %(tenant_id)s::bigint IS NULL OR tenant_id = %(tenant_id)s::bigint"
)
_DIFFERENT = (
    "SELECT '{table}' AS rollup, COALESCE(e.tenant_id, a.tenant_id) AS tenant_id "
    "FROM ({expected}) AS e FULL JOIN ({actual}) AS a USING (tenant_id, day, {keys}) "
    "WHERE e.notes IS DISTINCT FROM a.notes"
)
_ROLLUP_KEYS = {
    ROLLUP_COUNTS_TABLE: ("facility_id", "category", "priority"),
    ROLLUP_RESIDENTS_TABLE: ("facility_id", "patient_id"),
}
ROLLUP_DIFFERENCES_SQL = (
    "SELECT rollup, tenant_id, COUNT(*) FROM ("
    + " UNION ALL ".join(
        _DIFFERENT.format(
            table=table,
            keys=", ".join(keys),
            expected=_EXPECTED_FROM_NOTES.format(columns=", ".join(f"n.{k}" for k in keys)),
            actual=_ROLLUP_ROWS.format(table=table),
        )
        for table, keys in _ROLLUP_KEYS.items()
    )
    + ") AS differences GROUP BY rollup, tenant_id ORDER BY rollup, tenant_id"
)


@dataclass(frozen=True)
class RollupDifferences:
    """Rollup rows that disagree with the notes (missing, extra or miscounted), per table."""

    rows: dict[str, dict[int, int]]  # table -> tenant id -> rows that differ

    @property
    def total(self) -> int:
        """Return the number of rollup rows that differ, over every table and tenant."""
        return sum(sum(per_tenant.values()) for per_tenant in self.rows.values())

    @property
    def tenant_ids(self) -> tuple[int, ...]:
        """Return the sorted ids of the tenants with at least one differing row."""
        return tuple(sorted({t for per_tenant in self.rows.values() for t in per_tenant}))


def care_rollups_differences(*, tenant_id: int | None) -> RollupDifferences:
    """Return how the day rollups of one tenant (or of all, for None) differ from the notes.

    Recomputes every rollup row from the notes: a full read of the tenant's notes (index-only
    scans of the covering index) in one statement, safe while the service writes.
    """
    rows: dict[str, dict[int, int]] = {table: {} for table in ROLLUP_TABLES}
    with connection.cursor() as cursor:
        cursor.execute(ROLLUP_DIFFERENCES_SQL, {"tenant_id": tenant_id})
        for table, differing_tenant_id, count in cursor:
            rows[table][differing_tenant_id] = count
    return RollupDifferences(rows=rows)
