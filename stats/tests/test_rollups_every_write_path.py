"""Every way care notes are written keeps the rollups exact: `stats_rollups --check` says 0.

seed_notes (bulk SQL, then a reset that truncates), the notes API and its amendments, the
admin's add, amend, a superuser's repair (change), delete and bulk delete, and a time-zone
change made in the admin, one after the other.
"""

from datetime import date, timedelta
from http import HTTPStatus
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from carenotes.notes import seeding
from carenotes.notes.models import CareNote, Patient
from carenotes.notes.tests.factories import NOTE_ADMIN_INLINES, note_payload
from stats.tests.factories import rollup_rows
from tenants.models import Facility, Tenant
from tenants.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

SEED = {
    "notes": 3_000,
    "tenants": 2,
    "facilities_per_tenant": 2,
    "patients_per_facility": 3,
    "staff_per_tenant": 4,
    "days": 10,
    "end_date": date(2025, 3, 31),  # London and New York change their clocks in the window
}
NOTES_ADMIN = "/admin/carenotes/carenote/"


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _check() -> str:
    out = StringIO()
    call_command("stats_rollups", "--check", stdout=out)  # raises when any row differs
    return out.getvalue().splitlines()[-1]


def _rolled_up_notes(tenant_id: int) -> int:
    return sum(rollup_rows(tenant_id).counts.values())


def _admin_form(note_fields: dict, created_at) -> dict:
    local = timezone.localtime(created_at)
    return {
        **note_fields,
        "created_at_0": local.date().isoformat(),
        "created_at_1": local.time().replace(microsecond=0).isoformat(),
    }


def test_every_write_path_leaves_the_rollups_exact(token_client):
    seeding.seed_notes_run(config=seeding.seed_config_build(seed=1, **SEED))
    assert _check() == "0 differences"
    # A reset of generated data truncates the notes (the rollups' TRUNCATE trigger).
    result = seeding.seed_notes_run(config=seeding.seed_config_build(seed=2, **SEED), mode="reset")
    assert _check() == "0 differences"
    tenant = Tenant.objects.get(pk=result.tenant_ids[0])
    assert _rolled_up_notes(tenant.pk) == CareNote.objects.filter(tenant=tenant).count() > 0

    # The notes API.
    patient = Patient.objects.filter(tenant=tenant).order_by("id").first()
    api = token_client(MembershipFactory(tenant=tenant, role="carer").user)
    posted = api.post(
        "/api/notes/",
        note_payload(patient, created_at=(timezone.now() - timedelta(days=1)).isoformat()),
        format="json",
    )
    assert posted.status_code == HTTPStatus.CREATED, posted.json()
    amended = api.post(
        f"/api/notes/{posted.json()['id']}/amendments/",
        {"reason": "Wrong category.", "category": "treatment", "priority": 5},
        format="json",
    )
    assert amended.status_code == HTTPStatus.CREATED, amended.json()

    # The admin: add, change (another day and facility), delete, bulk delete.
    admin = Client()
    admin.force_login(UserFactory(is_superuser=True, is_staff=True))
    other_facility = Facility.objects.filter(tenant=tenant).exclude(pk=patient.facility_id).first()
    moved_to = Patient.objects.filter(facility=other_facility).first()
    fields = {
        "tenant": tenant.pk,
        "facility": patient.facility_id,
        "patient": patient.pk,
        "author": posted.json()["author_id"],
        "category": "treatment",
        "priority": 4,
        "body": "Added in the admin.",
    }
    added = admin.post(f"{NOTES_ADMIN}add/", _admin_form(fields, timezone.now()))
    assert added.status_code == HTTPStatus.FOUND, added.context["adminform"].form.errors
    note = CareNote.objects.filter(tenant=tenant, body="Added in the admin.").get()
    amend = admin.post(
        "/admin/carenotes/carenoteamendment/add/",
        {
            "note": note.pk,
            "reason": "Not urgent.",
            "category": "treatment",
            "priority": 1,
            "body": note.body,
        },
    )
    assert amend.status_code == HTTPStatus.FOUND, amend.context["adminform"].form.errors
    repair = {
        "facility": other_facility.pk,
        "patient": moved_to.pk,
        "repair_reason": "Moved.",
        **NOTE_ADMIN_INLINES,
    }
    changed = admin.post(
        f"{NOTES_ADMIN}{note.pk}/change/",
        _admin_form({**fields, **repair}, note.created_at - timedelta(days=3)),
    )
    assert changed.status_code == HTTPStatus.FOUND, changed.context["adminform"].form.errors
    victim, *bulk = CareNote.objects.filter(tenant=tenant).order_by("id")[:4]
    deleted = admin.post(f"{NOTES_ADMIN}{victim.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == HTTPStatus.FOUND
    bulk_deleted = admin.post(
        NOTES_ADMIN,
        {"action": "delete_selected", "_selected_action": [n.pk for n in bulk], "post": "yes"},
    )
    assert bulk_deleted.status_code == HTTPStatus.FOUND
    assert _check() == "0 differences"

    # A time-zone change in the admin re-buckets the tenant's notes.
    before = rollup_rows(tenant.pk)
    rezoned = admin.post(
        f"/admin/tenants/tenant/{tenant.pk}/change/",
        {"name": tenant.name, "slug": tenant.slug, "timezone": "Pacific/Auckland"},
    )
    assert rezoned.status_code == HTTPStatus.FOUND, rezoned.context["adminform"].form.errors
    assert rollup_rows(tenant.pk) != before
    assert _check() == "0 differences"
    assert _rolled_up_notes(tenant.pk) == CareNote.objects.filter(tenant=tenant).count()
    notes_total = CareNote.objects.count()
    assert sum(_rolled_up_notes(t) for t in result.tenant_ids) == notes_total
