"""Patients and care notes generated inside PostgreSQL: distributions and INSERT ... SELECT."""

import math
import random

from carenotes.notes.models import CareNote, Category, Patient
from carenotes.notes.seeding.config import NoteWindow
from carenotes.notes.seeding.names import FIRST_NAMES, LAST_NAMES

# Share of the notes per tenant, cycled when there are more than five tenants.
TENANT_WEIGHTS = (10, 15, 25, 20, 30)
CATEGORY_WEIGHTS = {Category.MEDICATION: 40, Category.OBSERVATION: 40, Category.TREATMENT: 20}
PRIORITY_WEIGHTS = {1: 10, 2: 20, 3: 40, 4: 20, 5: 10}
# Relative number of notes per local hour 00..23: medication rounds in the morning and
# evening, a busy day shift, a thin night shift.
HOUR_WEIGHTS = (2, 1, 1, 1, 1, 2, 4, 9, 12, 10, 8, 7, 9, 7, 6, 6, 7, 9, 10, 8, 6, 5, 4, 3)
# Body = one category-specific sentence + one general remark. Every category has the same
# number of sentences so a flat array indexed by (category, n) works in SQL.
BODY_SENTENCES = {
    Category.MEDICATION: (
        "Morning medication given as prescribed.",
        "Evening medication administered with water.",
        "PRN paracetamol given for mild pain.",
        "Inhaler used with support, good technique.",
    ),
    Category.OBSERVATION: (
        "Observations taken: BP and pulse within normal range.",
        "Resident settled, ate well at lunch.",
        "Fluid intake encouraged and recorded.",
        "Slept well, checked hourly overnight.",
    ),
    Category.TREATMENT: (
        "Dressing on left leg changed, wound healing.",
        "Repositioned to relieve pressure areas.",
        "Physiotherapy exercises completed with support.",
        "Catheter care carried out.",
    ),
}
BODY_REMARKS = (
    "No concerns.",
    "Family informed.",
    "Will monitor.",
    "Resident in good spirits.",
    "Handed over to next shift.",
)
# Patient references are P00001, P00002, ...; wider only when a tenant has more patients.
PATIENT_REFERENCE_DIGITS = 5

NOTE_TABLE = CareNote._meta.db_table
PATIENT_TABLE = Patient._meta.db_table
NOTE_COLUMNS = "tenant_id, facility_id, patient_id, author_id, category, priority, body, created_at"


def tenant_note_counts(*, notes: int, tenants: int) -> list[int]:
    """Split ``notes`` over ``tenants`` by TENANT_WEIGHTS exactly (largest remainder)."""
    weights = [TENANT_WEIGHTS[i % len(TENANT_WEIGHTS)] for i in range(tenants)]
    total = sum(weights)
    shares = [notes * w / total for w in weights]
    counts = [math.floor(s) for s in shares]
    by_remainder = sorted(range(tenants), key=lambda i: (counts[i] - shares[i], i))
    for i in by_remainder[: notes - sum(counts)]:
        counts[i] += 1
    return counts


def weighted_lookup(weights: dict) -> list:
    """Return a lookup table where each key appears weight/gcd times (uniform pick = weighted)."""
    divisor = math.gcd(*weights.values())
    return [key for key, weight in weights.items() for _ in range(weight // divisor)]


def generation_session_set(*, cursor, seed: int) -> None:
    """Make this transaction's random() a function of ``seed``, drawn in a fixed order."""
    # A serial plan keeps the order of random() calls, and so the rows, a function of the
    # seed; JIT compilation would cost more than it saves on these simple statements.
    cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
    cursor.execute("SET LOCAL jit = off")
    # setseed() takes a double in [-1, 1]; spread integer seeds over it reproducibly.
    cursor.execute("SELECT setseed(%s)", [random.Random(seed).uniform(-1.0, 1.0)])


# Row k (0-based) is patient k % per_facility + 1 of facility k / per_facility in the flat
# list of every tenant's facilities; its reference counts on within the tenant. One
# statement for every tenant, one series so random() is drawn in the order of k.
PATIENT_INSERT = f"""
INSERT INTO {PATIENT_TABLE} (tenant_id, facility_id, reference, display_name)
SELECT (%(tenant_ids)s::bigint[])[k / %(per_facility)s + 1],
       (%(facility_ids)s::bigint[])[k / %(per_facility)s + 1],
       'P' || lpad(((%(facility_positions)s::int[])[k / %(per_facility)s + 1] * %(per_facility)s
                    + k %% %(per_facility)s + 1)::text, %(digits)s, '0'),
       (%(first_names)s::text[])[floor(random() * %(n_first)s)::int + 1] || ' ' ||
       (%(last_names)s::text[])[floor(random() * %(n_last)s)::int + 1]
FROM generate_series(0, %(count)s - 1) AS k
ORDER BY k
"""


def patients_create(
    *, cursor, facility_ids: dict[int, list[int]], per_facility: int
) -> dict[int, list[tuple[int, int]]]:
    """Insert ``per_facility`` patients into each facility; return (id, facility) by tenant.

    ``facility_ids`` maps each tenant id to its facility ids, in creation order.
    """
    flat = [
        (tenant_id, facility_id, position)
        for tenant_id, ids in facility_ids.items()
        for position, facility_id in enumerate(ids)
    ]
    most = per_facility * max(len(ids) for ids in facility_ids.values())
    cursor.execute(
        PATIENT_INSERT,
        {
            "tenant_ids": [row[0] for row in flat],
            "facility_ids": [row[1] for row in flat],
            "facility_positions": [row[2] for row in flat],
            "per_facility": per_facility,
            "digits": max(PATIENT_REFERENCE_DIGITS, len(str(most))),
            "first_names": list(FIRST_NAMES),
            "n_first": len(FIRST_NAMES),
            "last_names": list(LAST_NAMES),
            "n_last": len(LAST_NAMES),
            "count": len(flat) * per_facility,
        },
    )
    cursor.execute(
        f"SELECT tenant_id, id, facility_id FROM {PATIENT_TABLE} "
        "WHERE tenant_id = ANY(%s) ORDER BY id",
        [list(facility_ids)],
    )
    patients: dict[int, list[tuple[int, int]]] = {tenant_id: [] for tenant_id in facility_ids}
    for tenant_id, patient_id, facility_id in cursor.fetchall():
        patients[tenant_id].append((patient_id, facility_id))
    return patients


# Note times: the window [start, end) is cut into its real hours (the last one shorter when
# the window ends at now); an hour's share of the notes is its local hour's weight times its
# length in seconds. Each note draws a number below the total of those masses and takes the
# hour whose running total brackets it (width_bucket, a binary search), then a second
# uniformly within that hour's length. So every note is inside the window, never after its
# end, and the local hours follow HOUR_WEIGHTS.
#
# The inner query draws every random number once per row, in a fixed order (a subquery
# with volatile outputs is never flattened); the outer one maps them to values through
# constant arrays: every body text, and the hours of the window (built once per statement,
# read through InitPlans). Measured: streaming the same SELECT through COPY TO / COPY FROM
# on two connections was no faster.
NOTE_INSERT = f"""
INSERT INTO {NOTE_TABLE} ({NOTE_COLUMNS})
WITH slot AS (
    SELECT start,
           (%(hour_weights)s::int[])[extract(hour FROM start AT TIME ZONE %(timezone)s)::int + 1]
               AS weight,
           floor(extract(epoch FROM least(start + interval '1 hour', %(window_end)s) - start))
               ::bigint AS seconds
    FROM generate_series(%(window_start)s::timestamptz,
                         %(window_end)s::timestamptz - interval '1 microsecond',
                         interval '1 hour') AS start
), running AS (
    SELECT start, seconds, weight * seconds AS mass,
           (sum(weight * seconds) OVER (ORDER BY start))::bigint AS upto
    FROM slot
), hours AS MATERIALIZED (
    SELECT array_agg(start ORDER BY start) AS starts,
           array_agg(seconds ORDER BY start) AS lengths,
           array_agg(upto - mass ORDER BY start) AS below,
           max(upto) AS total
    FROM running
)
SELECT %(tenant_id)s,
       (%(patient_facility_ids)s::bigint[])[p],
       (%(patient_ids)s::bigint[])[p],
       (%(author_ids)s::bigint[])[a],
       (%(categories)s::text[])[c],
       r,
       (%(bodies)s::text[])[((c - 1) * %(n_sentences)s + s - 1) * %(n_remarks)s + m],
       (SELECT starts FROM hours)[h]
           + floor(v * (SELECT lengths FROM hours)[h]) * interval '1 second'
FROM (
    SELECT floor(random() * %(n_patients)s)::int + 1 AS p,
           floor(random() * %(n_authors)s)::int + 1 AS a,
           (%(category_lookup)s::int[])[floor(random() * %(n_category_lookup)s)::int + 1] AS c,
           (%(priority_lookup)s::int[])[floor(random() * %(n_priority_lookup)s)::int + 1] AS r,
           floor(random() * %(n_sentences)s)::int + 1 AS s,
           floor(random() * %(n_remarks)s)::int + 1 AS m,
           width_bucket(floor(random() * (SELECT total FROM hours))::bigint,
                        (SELECT below FROM hours)) AS h,
           random() AS v
    -- generate_series in the select list streams; in FROM it is materialised first.
    FROM (SELECT generate_series(1, %(count)s)) AS series
) AS draw
"""


def note_params(
    *,
    tenant_id: int,
    timezone_name: str,
    window: NoteWindow,
    patients: list[tuple[int, int]],
    author_ids: list[int],
) -> dict:
    """Return the parameters of NOTE_INSERT for one tenant (add ``count``, rows per chunk)."""
    categories = list(BODY_SENTENCES)
    category_lookup = weighted_lookup(
        {categories.index(cat) + 1: weight for cat, weight in CATEGORY_WEIGHTS.items()}
    )
    priority_lookup = weighted_lookup(PRIORITY_WEIGHTS)
    return {
        "tenant_id": tenant_id,
        "patient_ids": [p[0] for p in patients],
        "patient_facility_ids": [p[1] for p in patients],
        "n_patients": len(patients),
        "author_ids": author_ids,
        "n_authors": len(author_ids),
        "categories": [str(c) for c in categories],
        "category_lookup": category_lookup,
        "n_category_lookup": len(category_lookup),
        "priority_lookup": priority_lookup,
        "n_priority_lookup": len(priority_lookup),
        # Index ((category - 1) * sentences + sentence - 1) * remarks + remark, all 1-based.
        "bodies": [
            f"{sentence} {remark}"
            for c in categories
            for sentence in BODY_SENTENCES[c]
            for remark in BODY_REMARKS
        ],
        "n_sentences": len(BODY_SENTENCES[categories[0]]),
        "n_remarks": len(BODY_REMARKS),
        "hour_weights": list(HOUR_WEIGHTS),
        "timezone": timezone_name,
        "window_start": window.start,
        "window_end": window.end,
    }
