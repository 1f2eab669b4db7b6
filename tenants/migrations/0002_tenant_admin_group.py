"""The "Tenant admin" group: the Django admin permissions of users with an admin membership.

Which rows they may touch is decided by tenants.admin_scoping; this group only says which
models and actions. The list is frozen here (migrations must not import app code); a test
checks it matches tenants.services.TENANT_ADMIN_PERMISSIONS.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP_NAME = "Tenant admin"
PERMISSIONS = [
    "auth.view_user",
    "tenants.view_tenant",
    "tenants.change_tenant",
    "tenants.view_facility",
    "tenants.add_facility",
    "tenants.change_facility",
    "tenants.view_membership",
    "tenants.add_membership",
    "tenants.change_membership",
    "tenants.delete_membership",
    "carenotes.view_patient",
    "carenotes.add_patient",
    "carenotes.change_patient",
    "carenotes.view_carenote",
    "carenotes.add_carenote",
    "carenotes.change_carenote",
]


def create_group(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate); create them now
    # so that a fresh database gets a complete group.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP_NAME)
    for dotted in PERMISSIONS:
        app_label, codename = dotted.split(".")
        group.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )


def delete_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0001_tenants_facilities_memberships_tokens"),
        ("carenotes", "0001_patients_and_care_notes"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, delete_group)]
