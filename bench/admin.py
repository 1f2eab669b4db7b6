"""Time the CareNote admin changelist and count its queries on the configured database.

    python bench/admin.py --load 1000000   # once: add synthetic notes (dev DB only!)
    python bench/admin.py                  # measure

`--load` adds BENCH tenants, facilities, patients and N notes with one INSERT ... SELECT
generate_series, then VACUUM ANALYZE. The measurement opens each page through Django's
test client (full middleware, templates and SQL, no network) as a superuser and as a
tenant admin, and prints the median time and the query count per page.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carenotes.settings")
# The test client speaks plain HTTP to a host of our choosing.
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")

BENCH_PREFIX = "bench"
TENANTS, FACILITIES_PER_TENANT, PATIENTS_PER_FACILITY = 20, 5, 50
CHANGELIST = "/admin/carenotes/carenote/"
HOST = "localhost"

NOTES_INSERT = """
    WITH pts AS (
        SELECT row_number() OVER (ORDER BY id) - 1 AS i, id, tenant_id, facility_id
        FROM carenotes_patient WHERE reference LIKE 'BENCH-%%'
    ), n AS (SELECT count(*) AS total FROM pts)
    INSERT INTO carenotes_carenote
        (tenant_id, facility_id, patient_id, author_id, category, priority, body, created_at)
    SELECT pts.tenant_id, pts.facility_id, pts.id, %(author_id)s,
           (ARRAY['medication', 'observation', 'treatment'])[1 + g %% 3],
           1 + g %% 5,
           'Synthetic care note ' || g,
           now() - (g %% 525600) * interval '1 minute'
    FROM generate_series(1, %(notes)s) AS g
    CROSS JOIN n
    JOIN pts ON pts.i = g %% n.total
"""


def load(notes: int) -> None:
    """Add BENCH tenants with facilities and patients, then ``notes`` notes spread over them."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from carenotes.notes.models import Patient
    from tenants.models import Facility, Tenant

    user_model = get_user_model()
    author, _ = user_model.objects.get_or_create(username=f"{BENCH_PREFIX}-author")
    for t in range(TENANTS):
        tenant, created = Tenant.objects.get_or_create(
            slug=f"{BENCH_PREFIX}-{t}", defaults={"name": f"Bench Care {t}"}
        )
        if not created:
            continue
        for f in range(FACILITIES_PER_TENANT):
            facility = Facility.objects.create(tenant=tenant, name=f"Bench Home {t}.{f}")
            Patient.objects.bulk_create(
                Patient(
                    tenant=tenant,
                    facility=facility,
                    reference=f"BENCH-{t}-{f}-{p}",
                    display_name=f"Resident {p}",
                )
                for p in range(PATIENTS_PER_FACILITY)
            )
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(NOTES_INSERT, {"author_id": author.pk, "notes": notes})
    print(f"inserted {notes} notes in {time.monotonic() - started:.1f}s")
    with connection.cursor() as cursor:  # autocommit: VACUUM cannot run in a transaction
        cursor.execute("VACUUM ANALYZE carenotes_carenote")


def _users():
    from django.contrib.auth import get_user_model

    from tenants.models import Tenant
    from tenants.services import membership_grant

    user_model = get_user_model()
    root, _ = user_model.objects.get_or_create(
        username=f"{BENCH_PREFIX}-root", defaults={"is_superuser": True, "is_staff": True}
    )
    tenant = Tenant.objects.get(slug=f"{BENCH_PREFIX}-0")
    admin, _ = user_model.objects.get_or_create(username=f"{BENCH_PREFIX}-admin")
    membership_grant(user=admin, tenant=tenant, role="admin")
    return {"superuser": root, "tenant admin": admin}, tenant


def _measure(client, params: dict, runs: int) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(CHANGELIST, params, HTTP_HOST=HOST)  # warm caches and connections
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(CHANGELIST, params, HTTP_HOST=HOST)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    with CaptureQueriesContext(connection) as captured:
        client.get(CHANGELIST, params, HTTP_HOST=HOST)
    counts = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    assert not [sql for sql in counts if "carenotes_carenote" in sql], counts
    return statistics.median(timings), len(captured.captured_queries)


def bench(runs: int) -> None:
    """Print median milliseconds and query counts for the changelist pages."""
    from django.test import Client

    from carenotes.notes.models import CareNote
    from tenants.models import Facility

    users, tenant = _users()
    facility = Facility.objects.filter(tenant=tenant).order_by("id").first()
    pages = {
        "unfiltered": {},
        "facility": {"facility__id__exact": facility.pk},
        "category+priority": {"category__exact": "medication", "priority__exact": "2"},
        "search patient": {"q": f"BENCH-0-0-{PATIENTS_PER_FACILITY - 1}"},
        "page 50": {"p": "50"},
    }
    started = time.perf_counter()
    total = CareNote.objects.count()
    count_ms = (time.perf_counter() - started) * 1000
    print(f"notes in table: {total}; a plain COUNT(*) of them takes {count_ms:.0f} ms")
    print(f"{'user':<14}{'page':<20}{'median ms':>10}{'queries':>9}")
    for label, user in users.items():
        client = Client()
        client.force_login(user)
        for page, params in pages.items():
            median_ms, queries = _measure(client, params, runs)
            print(f"{label:<14}{page:<20}{median_ms:>10.1f}{queries:>9}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=0, help="add this many synthetic notes first")
    parser.add_argument("--runs", type=int, default=7, help="timed requests per page")
    args = parser.parse_args()
    if args.load < 0 or args.runs < 1:
        parser.error("--load must be >= 0 and --runs >= 1")
    import django

    django.setup()
    from tenants.rls import rls_owner

    if args.load:
        with rls_owner():  # bulk load and VACUUM are the owner's (tenants/rls.py)
            load(args.load)
    bench(args.runs)


if __name__ == "__main__":
    main()
