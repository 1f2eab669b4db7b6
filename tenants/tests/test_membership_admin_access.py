"""membership_grant / membership_revoke give and take tenant-admin access to the Django admin."""

import pytest
from django.contrib.auth.models import Group

from tenants.services import (
    TENANT_ADMIN_GROUP,
    TENANT_ADMIN_PERMISSIONS,
    membership_grant,
    membership_revoke,
)
from tenants.tests.factories import TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


def _access(user) -> tuple[bool, bool]:
    user.refresh_from_db()
    return user.is_staff, user.groups.filter(name=TENANT_ADMIN_GROUP).exists()


def test_the_group_has_exactly_the_tenant_admin_permissions():
    group = Group.objects.get(name=TENANT_ADMIN_GROUP)
    granted = {
        f"{app_label}.{codename}"
        for app_label, codename in group.permissions.values_list(
            "content_type__app_label", "codename"
        )
    }
    assert granted == set(TENANT_ADMIN_PERMISSIONS)


def test_a_deleted_group_is_recreated_with_its_permissions():
    Group.objects.filter(name=TENANT_ADMIN_GROUP).delete()
    user = UserFactory()
    membership_grant(user=user, tenant=TenantFactory(), role="admin")
    assert user.has_perm("carenotes.view_carenote")
    assert Group.objects.get(name=TENANT_ADMIN_GROUP).permissions.count() == len(
        TENANT_ADMIN_PERMISSIONS
    )


def test_granting_admin_makes_staff_with_the_group_and_its_permissions():
    user = UserFactory()
    membership_grant(user=user, tenant=TenantFactory(), role="admin")
    assert _access(user) == (True, True)
    assert user.has_perm("carenotes.add_carenoteamendment")
    assert not user.has_perm("carenotes.change_carenote")
    assert not user.has_perm("carenotes.delete_carenote")


@pytest.mark.parametrize("role", ["manager", "carer"])
def test_other_roles_do_not_give_admin_access(role):
    user = UserFactory()
    membership_grant(user=user, tenant=TenantFactory(), role=role)
    assert _access(user) == (False, False)


def test_revoking_the_last_admin_membership_removes_access():
    user = UserFactory()
    first, second = TenantFactory.create_batch(2)
    membership_grant(user=user, tenant=first, role="admin")
    membership_grant(user=user, tenant=second, role="admin")
    membership_revoke(user=user, tenant=first)
    assert _access(user) == (True, True)
    membership_revoke(user=user, tenant=second)
    assert _access(user) == (False, False)


def test_demotion_from_admin_removes_access():
    user, tenant = UserFactory(), TenantFactory()
    membership_grant(user=user, tenant=tenant, role="admin")
    membership_grant(user=user, tenant=tenant, role="carer")
    assert _access(user) == (False, False)


def test_superuser_keeps_staff_when_their_last_admin_membership_goes():
    user, tenant = UserFactory(is_superuser=True, is_staff=True), TenantFactory()
    membership_grant(user=user, tenant=tenant, role="admin")
    membership_revoke(user=user, tenant=tenant)
    assert _access(user) == (True, False)


def test_staff_given_by_other_means_is_left_alone():
    user, tenant = UserFactory(is_staff=True), TenantFactory()
    membership_grant(user=user, tenant=tenant, role="carer")
    membership_revoke(user=user, tenant=tenant)
    assert _access(user) == (True, False)
