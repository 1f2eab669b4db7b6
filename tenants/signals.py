"""Keeps cached principals and tenant facts in step with the rows they were built from.

Admin edits and service calls both end in model saves/deletes, so hooking the models is
the one place that sees every change; the handlers only drop cache entries.
"""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from carenotes.core.cache import cache_delete_many
from tenants.models import ApiToken, Facility, Membership, Tenant
from tenants.selectors import principal_token_cache_key
from tenants.services import principal_cache_invalidate, tenant_info_cache_invalidate


def _after_commit_invalidate_principal(user_id: int) -> None:
    # Drop now (the change is visible to this transaction's own reads) and again after
    # commit, so a concurrent request cannot re-cache the old state in between.
    principal_cache_invalidate(user_id=user_id)
    transaction.on_commit(lambda: principal_cache_invalidate(user_id=user_id))


@receiver([post_save, post_delete], sender=Membership)
@receiver([post_save, post_delete], sender=ApiToken)
def access_changed(sender, instance, **kwargs) -> None:
    _after_commit_invalidate_principal(instance.user_id)


@receiver(post_delete, sender=ApiToken)
def token_deleted(sender, instance, **kwargs) -> None:
    # A deleted token is no longer found by principal_cache_invalidate's lookup of the
    # user's tokens, so its own cache entry is dropped here, now and after commit.
    keys = [principal_token_cache_key(instance.key_digest)]
    cache_delete_many(keys)
    transaction.on_commit(lambda: cache_delete_many(keys))


@receiver([post_save, post_delete], sender=get_user_model())
def user_changed(sender, instance, **kwargs) -> None:
    _after_commit_invalidate_principal(instance.pk)


@receiver([post_save, post_delete], sender=Facility)
def facility_changed(sender, instance, **kwargs) -> None:
    tenant_id = instance.tenant_id
    tenant_info_cache_invalidate(tenant_id=tenant_id)
    transaction.on_commit(lambda: tenant_info_cache_invalidate(tenant_id=tenant_id))


@receiver([post_save, post_delete], sender=Tenant)
def tenant_changed(sender, instance, **kwargs) -> None:
    tenant_id = instance.pk
    tenant_info_cache_invalidate(tenant_id=tenant_id)
    transaction.on_commit(lambda: tenant_info_cache_invalidate(tenant_id=tenant_id))
