"""Keeps cached stats answers in step with the tenant facts they were computed from.

Stats cache keys name the tenant, the day and the requested scope, not the tenant's time
zone or facility list (stats.cache.care_stats_keys). A change of either makes every cached
answer of the tenant stale by bumping its generation: now, and again after commit, so that
a request running in between cannot store an answer from the old facts as fresh.
"""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from stats.services import care_stats_invalidate_tenant
from tenants.models import Facility, Tenant


def _invalidate_now_and_after_commit(tenant_id: int) -> None:
    care_stats_invalidate_tenant(tenant_id=tenant_id)
    transaction.on_commit(lambda: care_stats_invalidate_tenant(tenant_id=tenant_id))


@receiver([post_save, post_delete], sender=Facility)
def facility_changed(sender, instance, **kwargs) -> None:
    _invalidate_now_and_after_commit(instance.tenant_id)


@receiver(post_save, sender=Tenant)
def tenant_changed(sender, instance, **kwargs) -> None:
    _invalidate_now_and_after_commit(instance.pk)
