"""Joins between tenant tables that name the tenant, so that Citus keeps them on one worker.

A foreign key from a note to its resident joins on ``patient.id`` alone. On Citus both
tables are sharded on ``tenant_id``; a join Citus can run on one worker must equate the
distribution columns too (``patient.tenant_id = note.tenant_id``), which the composite
foreign keys make true of every row anyway. On plain PostgreSQL the extra condition costs a
comparison per joined row.
"""

from django.db.models import F, QuerySet

DISTRIBUTION_COLUMN = "tenant_id"


def colocated(queryset: QuerySet, *relations: str) -> QuerySet:
    """Return ``queryset`` joined to each of ``relations`` on the row's own tenant as well."""
    return queryset.filter(
        **{f"{relation}__{DISTRIBUTION_COLUMN}": F(DISTRIBUTION_COLUMN) for relation in relations}
    )
