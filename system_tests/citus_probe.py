"""Probes the citus tests run in a process of their own, against the database it is given.

``python -m system_tests.citus_probe <probe> <credentials.json>`` with DATABASE_URL (and
DATABASE_CITUS) naming the database: the test suite's own process is bound to its test
database, while these read and write a seeded database, plain or distributed, through the
application's real code (authentication, views, selectors, the row-level-security wrapper).
Prints one JSON document, on the last line.

- ``answers``: the API answers the product gives for one seed (stats day and range, notes
  list, attention list, admin changelist ids): equal on plain PostgreSQL and on Citus.
- ``explain``: each hot request's tenant-scoped statements with the Citus EXPLAIN of each
  (run under the request's scope): the number of tasks it runs on the workers.
- ``scope``: what the app role sees and may write under a tenant's scope on the cluster:
  routed, multi-shard, inside a transaction, and a foreign insert.
"""

import json
import os
import re
import sys

import django

# Statements of the product that read or write tenant rows name one of these tables.
TENANT_TABLES = re.compile(
    r'\b"?(carenotes_carenote|carenotes_patient|carenotes_carenoteamendment|tenants_facility'
    r'|stats_day_counts|stats_day_residents|tenants_membership|audit_readrecord)"?\b'
)
# Fields that differ between two runs of one answer: the clock and the cache.
VARYING = {"cached", "computed_at", "cutoff"}
# What the wrappers may write in front of a statement: pghistory's context (its own inner
# wrapper adds it on the coordinator, where it is harmless).
SCOPE_PREFIX = re.compile(r"^(SELECT set_config\('pghistory\.[^;]+; )+")
TASK_COUNT = re.compile(r"Task Count: (\d+)")


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carenotes.settings")
    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()  # responses keep their template context (the changelist's rows)


def _requests(credentials: dict) -> list[tuple[str, str]]:
    """Return (name, path) of the reads compared and explained, for the first tenant."""
    tenant = credentials["tenants"][0]
    tenant_id, end = tenant["tenant_id"], tenant["end_date"]
    facility = tenant["facility_ids"][0]
    return [
        ("stats day", f"/api/care-stats/?tenant_id={tenant_id}&date={end}"),
        (
            "stats day, one home",
            f"/api/care-stats/?tenant_id={tenant_id}&date={end}&facility_ids={facility}",
        ),
        ("stats range", f"/api/care-stats/?tenant_id={tenant_id}&period=last_30_days"),
        ("notes list", f"/api/notes/?tenant_id={tenant_id}"),
        ("notes list, one home", f"/api/notes/?tenant_id={tenant_id}&facility_id={facility}"),
        (
            "attention list",
            f"/api/residents/attention/?tenant_id={tenant_id}&facility_ids={facility}&hours=24",
        ),
    ]


def _foreign_requests(credentials: dict) -> list[tuple[str, str]]:
    """Return (name, path) of reads of the second tenant's data, made as the first's manager."""
    from carenotes.notes.models import CareNote
    from tenants.rls import rls_system

    theirs = credentials["tenants"][1]
    tenant_id, facility = theirs["tenant_id"], theirs["facility_ids"][0]
    with rls_system():
        note_id = CareNote.objects.filter(tenant_id=tenant_id).order_by("id").first().pk
    return [
        ("foreign: stats day", f"/api/care-stats/?tenant_id={tenant_id}&date={theirs['end_date']}"),
        ("foreign: stats range", f"/api/care-stats/?tenant_id={tenant_id}&period=last_7_days"),
        ("foreign: notes list", f"/api/notes/?tenant_id={tenant_id}"),
        ("foreign: note", f"/api/notes/{note_id}/"),
        (
            "foreign: attention list",
            f"/api/residents/attention/?tenant_id={tenant_id}&facility_ids={facility}&hours=24",
        ),
        ("foreign: residents", f"/api/residents/?tenant_id={tenant_id}"),
    ]


def _manager_client(credentials: dict):
    from django.test import Client

    (manager,) = [u for u in credentials["tenants"][0]["users"] if u["role"] == "manager"]
    return Client(HTTP_AUTHORIZATION=f"Token {manager['token']}", HTTP_HOST="localhost")


def _normalised(body):
    """Drop what differs between two databases seeded alike: cache and timing fields."""
    if isinstance(body, dict):
        return {k: _normalised(v) for k, v in body.items() if k not in VARYING}
    if isinstance(body, list):
        return [_normalised(item) for item in body]
    return body


def probe_answers(credentials: dict) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = _manager_client(credentials)
    answers = {}
    for name, path in _requests(credentials):
        try:
            response = client.get(path, secure=True)
        except Exception as error:
            answers[name] = [500, f"{type(error).__name__}: {error}"]
            continue
        answers[name] = [response.status_code, _normalised(response.json())]
    for name, path in _foreign_requests(credentials):
        response = client.get(path, secure=True)
        answers[name] = [response.status_code, _normalised(response.json())]
    foreign_note = _foreign_requests(credentials)[3][1]
    response = client.post(
        f"{foreign_note}amendments/",
        json.dumps({"reason": "Not ours.", "priority": 1}),
        content_type="application/json",
        secure=True,
    )
    answers["foreign: amend"] = [response.status_code, _normalised(response.json())]
    admin = Client(HTTP_HOST="localhost")
    admin.force_login(get_user_model().objects.get(username=credentials["superuser"]["username"]))
    try:
        response = admin.get("/admin/carenotes/carenote/", secure=True)
        answers["admin changelist"] = [
            response.status_code,
            [note.pk for note in response.context["cl"].result_list],
        ]
    except Exception as error:
        answers["admin changelist"] = [500, f"{type(error).__name__}: {error}"]
    return answers


def probe_explain(credentials: dict) -> dict:
    from django.core.cache import caches
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tenants.rls import rls_tenants

    caches["default"].delete_pattern("*")  # every read a cache miss: its SQL runs
    tenant_id = credentials["tenants"][0]["tenant_id"]
    client = _manager_client(credentials)
    requests = [*_requests(credentials), ("note create", "/api/notes/")]
    plans = {}
    for name, path in requests:
        with CaptureQueriesContext(connection) as captured:
            if name == "note create":
                response = client.post(
                    path, _note_payload(credentials), secure=True, content_type="application/json"
                )
            else:
                response = client.get(path, secure=True)
        statements = []
        for query in captured.captured_queries:
            sql = SCOPE_PREFIX.sub("", query["sql"])
            if not TENANT_TABLES.search(sql) or not sql.lstrip().upper().startswith(
                ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")
            ):
                continue
            with rls_tenants([tenant_id]), connection.cursor() as cursor:
                # EXPLAIN of a write runs nothing: without ANALYZE it only plans.
                cursor.execute(f"EXPLAIN {sql}")
                plan = "\n".join(row[0] for row in cursor.fetchall())
            counts = [int(n) for n in TASK_COUNT.findall(plan)]
            statements.append(
                {"sql": sql, "tasks": counts, "citus": "Custom Scan (Citus" in plan, "plan": plan}
            )
        plans[name] = {"status": response.status_code, "statements": statements}
    return plans


def _note_payload(credentials: dict) -> str:
    from carenotes.notes.models import Patient
    from tenants.rls import rls_tenants

    tenant = credentials["tenants"][0]
    with rls_tenants([tenant["tenant_id"]]):
        patient = Patient.objects.filter(tenant_id=tenant["tenant_id"]).order_by("id").first()
    return json.dumps(
        {
            "tenant_id": tenant["tenant_id"],
            "facility_id": patient.facility_id,
            "patient_id": patient.pk,
            "category": "observation",
            "priority": 2,
            "body": "Probe note on the cluster.",
        }
    )


def probe_scope(credentials: dict) -> dict:
    from django.db import ProgrammingError, connection, transaction

    from carenotes.notes.models import CareNote
    from tenants.rls import NO_TENANTS, db_scope, rls_system, rls_tenants

    ours, theirs = (t["tenant_id"] for t in credentials["tenants"][:2])
    seen = {}
    with rls_system():
        seen["system: every tenant"] = sorted(
            CareNote.objects.order_by("tenant_id").values_list("tenant_id", flat=True).distinct()
        )
        template = CareNote.objects.filter(tenant_id=theirs).order_by("id").first()
    with rls_tenants([ours]):
        # No tenant named: every shard of both workers answers (multi-shard).
        seen["ours: multi-shard tenants"] = sorted(
            CareNote.objects.order_by("tenant_id").values_list("tenant_id", flat=True).distinct()
        )
        seen["ours: routed to theirs"] = CareNote.objects.filter(tenant_id=theirs).count()
        seen["ours: routed to ours > 0"] = CareNote.objects.filter(tenant_id=ours).count() > 0
        with transaction.atomic():
            CareNote.objects.filter(tenant_id=ours).count()
            seen["ours: in a transaction, multi-shard tenants"] = sorted(
                CareNote.objects.order_by("tenant_id")
                .values_list("tenant_id", flat=True)
                .distinct()
            )
        template.pk = None
        try:
            with transaction.atomic():
                template.save()
            seen["ours: foreign insert"] = "stored"
        except ProgrammingError as error:
            seen["ours: foreign insert"] = str(error).splitlines()[0]
    with db_scope(NO_TENANTS):
        seen["no tenants: notes"] = CareNote.objects.count()
    seen.update(_amend(credentials))
    seen["connection is citus"] = connection.settings_dict["NAME"] and bool(
        os.environ.get("DATABASE_CITUS")
    )
    return seen


def _amend(credentials: dict) -> dict:
    """Amend a note through the API; return what the change history recorded, and where."""
    from carenotes.notes.models import CareNote, CareNoteEvent
    from tenants.rls import rls_system

    tenant_id = credentials["tenants"][0]["tenant_id"]
    with rls_system():
        note = CareNote.objects.filter(tenant_id=tenant_id).order_by("id").first()
    response = _manager_client(credentials).post(
        f"/api/notes/{note.pk}/amendments/",
        json.dumps({"reason": "Wrong priority.", "priority": note.priority % 5 + 1}),
        content_type="application/json",
        secure=True,
    )
    with rls_system():
        events = list(
            CareNoteEvent.objects.filter(tenant_id=tenant_id, pgh_obj_id=note.pk)
            .order_by("pgh_id")
            .values("pgh_label", "pgh_context", "priority")
        )
    return {"amend: status": response.status_code, "amend: history": events}


PROBES = {"answers": probe_answers, "explain": probe_explain, "scope": probe_scope}


def main(argv: list[str]) -> int:
    name, credentials_path = argv
    _setup()
    with open(credentials_path) as handle:
        credentials = json.load(handle)
    result = PROBES[name](credentials)
    # The last line: the request log may write lines of its own before it.
    sys.stdout.write("\n" + json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
