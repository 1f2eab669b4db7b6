"""factory-boy factory for audit records; the user and tenant are made alongside."""

from datetime import UTC, datetime

import factory

from audit.models import ReadRecord
from tenants.tests.factories import TenantFactory, UserFactory


class ReadRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReadRecord

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    username = factory.SelfAttribute("user.username")
    route = "note-list"
    filters = factory.LazyAttribute(lambda record: {"tenant_id": str(record.tenant.pk)})
    note_ids = [1, 2, 3]
    note_count = 3
    request_id = factory.Sequence(lambda n: f"request-{n}")
    read_at = factory.LazyFunction(lambda: datetime(2025, 3, 10, 12, 0, tzinfo=UTC))
