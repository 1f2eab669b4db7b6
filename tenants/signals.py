"""Keeps cached principals and tenant facts in step with the rows they were built from.

Admin edits and service calls both end in model saves/deletes, so hooking the models is
the one place that sees every change; the handlers only drop cache entries, now and again
after commit (carenotes.core.cache.now_and_after_commit).
"""

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from carenotes.core.cache import cache_delete_many, now_and_after_commit
from tenants.models import ApiToken, Facility, Membership, Tenant
from tenants.selectors import principal_token_cache_key
from tenants.services import principal_cache_invalidate, tenant_info_cache_invalidate


def _principals_invalidate(user_id: int) -> None:
    now_and_after_commit(lambda: principal_cache_invalidate(user_id=user_id))


def _tenant_info_invalidate(tenant_id: int) -> None:
    now_and_after_commit(lambda: tenant_info_cache_invalidate(tenant_id=tenant_id))


@receiver([post_save, post_delete], sender=Membership)
@receiver([post_save, post_delete], sender=ApiToken)
def principals_on_access_change(sender, instance, **kwargs) -> None:
    _principals_invalidate(instance.user_id)


@receiver(post_delete, sender=ApiToken)
def principal_on_token_delete(sender, instance, **kwargs) -> None:
    # A deleted token is no longer found by principal_cache_invalidate's lookup of the
    # user's tokens, so its own cache entry is dropped here.
    keys = [principal_token_cache_key(instance.key_digest)]
    now_and_after_commit(lambda: cache_delete_many(keys))


@receiver([post_save, post_delete], sender=get_user_model())
def principals_on_user_change(sender, instance, **kwargs) -> None:
    _principals_invalidate(instance.pk)


@receiver([post_save, post_delete], sender=Facility)
def tenant_info_on_facility_change(sender, instance, **kwargs) -> None:
    _tenant_info_invalidate(instance.tenant_id)


@receiver([post_save, post_delete], sender=Tenant)
def tenant_info_on_tenant_change(sender, instance, **kwargs) -> None:
    _tenant_info_invalidate(instance.pk)
