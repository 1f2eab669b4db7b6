"""Keeps cached stats answers in step with the notes and tenant facts they were computed from.

Stats cache keys name the tenant, the day and the requested scope, not the tenant's time
zone or facility list (stats.cache.care_stats_keys). A change of either makes every cached
answer of the tenant stale by bumping its generation: now, and again after commit, so that
a request running in between cannot store an answer from the old facts as fresh.
"""

from django.db.models.signals import post_delete, post_save
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


@receiver(care_notes_changed)
def stats_on_care_notes_change(sender, tenant_id: int, days: frozenset, **kwargs) -> None:
    # Sent after commit (carenotes.notes.services), so one bump per day is enough.
    for day in days:
        care_stats_invalidate(tenant_id=tenant_id, day=day)
