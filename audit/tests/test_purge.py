"""audit_purge deletes the records past their retention, in batches, as the table's owner."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import ProgrammingError, transaction
from django.utils import timezone

from audit.models import ReadRecord
from audit.services import audit_purge
from audit.tests.factories import ReadRecordFactory
from tenants.rls import rls_owner, rls_tenants

pytestmark = pytest.mark.django_db

RETENTION_DAYS = 30


def _records(*days_ago: int) -> list[ReadRecord]:
    now = timezone.now()
    return [ReadRecordFactory(read_at=now - timedelta(days=days)) for days in days_ago]


def _left() -> list[int]:
    return list(ReadRecord.objects.order_by("id").values_list("id", flat=True))


@pytest.mark.parametrize(("expired", "statements"), [(0, 1), (4, 3), (5, 3)])
def test_the_purge_deletes_only_expired_records_a_batch_per_statement(
    expired, statements, django_assert_num_queries
):
    _records(*[RETENTION_DAYS + 1 + n for n in range(expired)])
    kept = _records(RETENTION_DAYS - 1, 0)
    before = timezone.now() - timedelta(days=RETENTION_DAYS)
    with rls_owner(), django_assert_num_queries(statements):
        assert audit_purge(before=before, batch_size=2) == expired
    assert _left() == [record.pk for record in kept]


def test_the_app_role_cannot_purge():
    (record,) = _records(RETENTION_DAYS + 1)
    refused = pytest.raises(ProgrammingError, match="permission denied")
    with rls_tenants([record.tenant_id]), refused, transaction.atomic():
        audit_purge(before=timezone.now())
    assert _left() == [record.pk]


def test_the_command_purges_past_the_retention_setting_as_the_owner(settings):
    settings.AUDIT_RETENTION_DAYS = RETENTION_DAYS
    kept = _records(RETENTION_DAYS + 2, RETENTION_DAYS + 1, RETENTION_DAYS - 1)[2]
    out = StringIO()
    # The suite runs as carenotes_system, which may not delete: the command must switch.
    call_command("audit_purge", batch_size=1, stdout=out)
    assert out.getvalue().startswith("Deleted 2 audit records read before ")
    assert _left() == [kept.pk]


def test_the_command_takes_the_days_to_keep():
    kept = _records(10, 3)[1]
    call_command("audit_purge", days=5, stdout=StringIO())
    assert _left() == [kept.pk]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"days": 0}, "--days must be a positive integer, got 0"),
        ({"batch_size": -5}, "--batch-size must be a positive integer, got -5"),
    ],
)
def test_the_command_refuses_bad_options(option, message):
    with pytest.raises(CommandError, match=message):
        call_command("audit_purge", **option)
