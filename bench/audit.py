"""Times the notes list with and without its access audit record, side by side.

Each request goes through Django's test client: the whole middleware chain, token
authentication, row-level security, the page's SELECT and, when audited, the record's INSERT
and its commit (no network, so the difference is the audit's). Three settings take turns
request by request (each first, middle and last in turn), so that drift and the other
engineers' load hit them alike:

- ``bare``: ``audit_request_read`` replaced by a no-op in the view (the state before);
- ``audited``: the view as served (the record's commit does not wait for the WAL flush);
- ``audited_durable``: as served with ``AUDIT_SYNCHRONOUS_COMMIT=1`` (it waits).

It reports the median request time of each setting and its ratio to ``bare``, and counts the
records each setting wrote (by request id): one per audited request, none for ``bare``. The
first run adds a ``bench-audit`` tenant with ``--notes`` notes (any database; they stay for
the next run). ``make bench-audit`` runs it.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

BENCH_TENANT_SLUG = "bench-audit"
BENCH_PATIENTS = 20
NOTES_PATH = "/api/notes/"
HOST = "localhost"  # in the default DJANGO_ALLOWED_HOSTS
SETTINGS = ("bare", "audited", "audited_durable")
# The view's name for the audit service, replaced for the ``bare`` setting.
AUDIT_CALL = "carenotes.notes.api.views.audit_request_read"
TARGET_RATIO = 1.10


def fixture(*, notes: int) -> tuple[int, str]:
    """Return the bench tenant's id and a fresh API key of one of its carers (made once)."""
    from django.contrib.auth import get_user_model

    from carenotes.notes.models import CareNote, Patient
    from tenants.models import Tenant
    from tenants.rls import rls_system
    from tenants.services import api_token_create, facility_create, membership_grant, tenant_create

    user_model = get_user_model()
    with rls_system():
        tenant = Tenant.objects.filter(slug=BENCH_TENANT_SLUG).first()
        if tenant is None:
            tenant = tenant_create(name="Bench Audit Care", slug=BENCH_TENANT_SLUG)
            facility = facility_create(tenant=tenant, name="Bench Audit Home")
            patients = Patient.objects.bulk_create(
                Patient(tenant=tenant, facility=facility, reference=f"BA-{n}", display_name="R")
                for n in range(BENCH_PATIENTS)
            )
            carer, _ = user_model.objects.get_or_create(username=f"{BENCH_TENANT_SLUG}-carer")
            membership_grant(user=carer, tenant=tenant, role="carer")
            start = datetime.now(UTC) - timedelta(days=1)
            CareNote.objects.bulk_create(
                CareNote(
                    tenant=tenant,
                    facility=facility,
                    patient=patients[n % BENCH_PATIENTS],
                    author=carer,
                    category="observation",
                    priority=1 + n % 5,
                    body=f"Bench audit note {n}: settled, ate well, no concerns.",
                    created_at=start + timedelta(seconds=n),
                )
                for n in range(notes)
            )
        carer = user_model.objects.get(username=f"{BENCH_TENANT_SLUG}-carer")
        _, key = api_token_create(user=carer, name="bench-audit")
    return tenant.pk, key


@contextlib.contextmanager
def _setting(name: str) -> Iterator[None]:
    from unittest import mock

    from django.test import override_settings

    if name == "bare":
        with mock.patch(AUDIT_CALL, lambda *args, **kwargs: None):
            yield
    else:
        with override_settings(AUDIT_SYNCHRONOUS_COMMIT=name == "audited_durable"):
            yield


def _records(run: str) -> dict[str, int]:
    """Return the records this run wrote per setting (its request ids name the setting)."""
    from audit.models import ReadRecord
    from tenants.rls import rls_system

    with rls_system():
        ids = ReadRecord.objects.filter(request_id__startswith=f"{run}-").values_list(
            "request_id", flat=True
        )
        written = {name: 0 for name in SETTINGS}
        for request_id in ids:
            setting = request_id.split("-")[1]
            if setting in written:  # not a warm-up request
                written[setting] += 1
    return written


def _timed(client, params: dict, request_id: str) -> float:
    started = time.perf_counter()
    response = client.get(NOTES_PATH, params, HTTP_X_REQUEST_ID=request_id)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.status_code
    return elapsed


def bench(*, tenant_id: int, key: str, rounds: int, per_round: int, page_size: int) -> dict:
    """Return each setting's median ms per notes-list request and its ratio to ``bare``.

    The settings take turns request by request, each first, middle and last in turn, so a
    burst of the machine's other load falls on all of them alike.
    """
    from rest_framework.test import APIClient

    client = APIClient(HTTP_HOST=HOST)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    params = {"tenant_id": tenant_id, "page_size": page_size}
    run = f"bench{time.time_ns()}"
    for n in range(5):  # warm the connection, the principal and the tenant facts
        _timed(client, params, f"{run}-warm-{n}")
    timings = {name: [] for name in SETTINGS}
    for n in range(rounds * per_round):
        shift = n % len(SETTINGS)
        for name in SETTINGS[shift:] + SETTINGS[:shift]:
            with _setting(name):
                timings[name].append(_timed(client, params, f"{run}-{name}-{n}"))
    records = _records(run)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    return {
        "requests_per_setting": rounds * per_round,
        "page_size": page_size,
        "median_ms": {name: round(value, 3) for name, value in medians.items()},
        "ratio_to_bare": {name: round(medians[name] / medians["bare"], 3) for name in SETTINGS[1:]},
        "target_ratio": TARGET_RATIO,
        "records_written": records,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=2000, help="notes of the bench tenant")
    parser.add_argument(
        "--rounds", type=int, default=20, help="rounds (requests = rounds x per-round)"
    )
    parser.add_argument("--per-round", type=int, default=25, help="requests per setting and round")
    parser.add_argument("--page-size", type=int, default=50, help="notes per page (1-200)")
    args = parser.parse_args(argv)
    if args.notes < 1 or args.rounds < 1 or args.per_round < 1:
        parser.error("--notes, --rounds and --per-round must be >= 1")
    if not 1 <= args.page_size <= 200:
        parser.error(f"--page-size must be between 1 and 200, got {args.page_size}")
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carenotes.settings")
    # The test client speaks plain HTTP; the throttle must never trip during the timed requests.
    os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
    os.environ.setdefault("THROTTLE_RATE_NOTES_READ", "100000000/h")
    django.setup()
    tenant_id, key = fixture(notes=args.notes)
    result = bench(
        tenant_id=tenant_id,
        key=key,
        rounds=args.rounds,
        per_round=args.per_round,
        page_size=args.page_size,
    )
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
