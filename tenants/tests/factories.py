"""factory-boy factories for tenants, facilities, users and memberships."""

import factory
from django.contrib.auth import get_user_model

from tenants.models import Facility, Membership, Role, Tenant
from tenants.services import membership_grant


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Care Group {n}")
    slug = factory.Sequence(lambda n: f"care-group-{n}")
    timezone = "Europe/London"


class FacilityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Facility

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Home {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Role.CARER


def tenant_admin_create(*, tenant: Tenant, **user_fields):
    """Return a new user who administers ``tenant`` (staff, via the membership service)."""
    user = UserFactory(**user_fields)
    membership_grant(user=user, tenant=tenant, role=Role.ADMIN)
    user.refresh_from_db()
    return user
