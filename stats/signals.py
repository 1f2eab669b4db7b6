"""Keeps cached stats answers in step with the notes and tenant facts they were computed from.

Stats cache keys name the tenant, the day and the requested scope, not the tenant's time
zone or facility list (stats.cache.care_stats_keys). A change of either makes every cached
answer of the tenant stale by bumping its generation: now, and again after commit, so that
a request running in between cannot store an answer from the old facts as fresh.
"""

from django.conf import settings
from django.db import connection
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from carenotes.core.cache import now_and_after_commit
from carenotes.notes.signals import care_notes_changed
from stats.services import care_stats_invalidate, care_stats_invalidate_tenant
from tenants.models import Facility, Tenant


def _generation_bump(tenant_id: int) -> None:
    now_and_after_commit(lambda: care_stats_invalidate_tenant(tenant_id=tenant_id))


@receiver([post_save, post_delete], sender=Facility)
def stats_on_facility_change(sender, instance, **kwargs) -> None:
    _generation_bump(instance.tenant_id)


@receiver(post_save, sender=Tenant)
def stats_on_tenant_change(sender, instance, **kwargs) -> None:
    _generation_bump(instance.pk)


@receiver(pre_save, sender=Tenant)
def stats_rollups_rezone_on_citus(sender, instance, **kwargs) -> None:
    """On Citus, rebuild a tenant's rollups in its new time zone (no trigger can: stats.citus).

    In the saving transaction, after the UPDATE (the rebuild reads the new zone), so that no
    reader sees the old buckets under the new zone once it commits.
    """
    if not settings.DATABASE_CITUS or instance.pk is None:
        return
    old = Tenant.objects.filter(pk=instance.pk).values_list("timezone", flat=True).first()
    if old is not None and old != instance.timezone:
        instance._stats_rezoned = True


@receiver(post_save, sender=Tenant)
def stats_rollups_rebuild_after_rezone(sender, instance, **kwargs) -> None:
    if getattr(instance, "_stats_rezoned", False):
        del instance._stats_rezoned
        with connection.cursor() as cursor:
            cursor.execute("SELECT stats_rollups_rebuild(%s)", [instance.pk])


@receiver(care_notes_changed)
def stats_on_care_notes_change(sender, tenant_id: int, days: frozenset, **kwargs) -> None:
    # Sent after commit (carenotes.notes.services), so one bump per day is enough.
    for day in days:
        care_stats_invalidate(tenant_id=tenant_id, day=day)
