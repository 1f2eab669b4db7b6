"""Joins between tenant tables that name the tenant, so that Citus keeps them on one worker.

A foreign key from a note to its resident joins on ``patient.id`` alone. On Citus both
tables are sharded on ``tenant_id``; a join Citus can run on one worker must equate the
distribution columns too (``patient.tenant_id = note.tenant_id``), which the composite
foreign keys make true of every row anyway. Only on Citus: plain PostgreSQL's planner would
take the extra condition for an independent filter and underestimate the rows (the admin
shows its estimate as the count).
"""

from django.conf import settings
from django.db.models import F, QuerySet

DISTRIBUTION_COLUMN = "tenant_id"


def colocated(queryset: QuerySet, *relations: str) -> QuerySet:
    """Return ``queryset`` joined to each of ``relations`` on the row's own tenant as well
    (on Citus, ``settings.DATABASE_CITUS``; unchanged otherwise)."""
    if not settings.DATABASE_CITUS:
        return queryset
    return queryset.filter(
        **{f"{relation}__{DISTRIBUTION_COLUMN}": F(DISTRIBUTION_COLUMN) for relation in relations}
    )
