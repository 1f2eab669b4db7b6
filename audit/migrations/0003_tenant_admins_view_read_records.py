"""Tenant admins may view (only view) the audit records of their tenants in the Django admin.

Which records is decided by tenants.admin_scoping; this adds ``audit.view_readrecord`` to the
"Tenant admin" group of tenants 0002. Frozen here (migrations must not import app code);
tenants/tests/test_membership_admin_access.py checks the group against
tenants.services.TENANT_ADMIN_PERMISSIONS.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP_NAME = "Tenant admin"
APP_LABEL = "audit"
CODENAME = "view_readrecord"


def _permission(apps):
    app_config = apps.get_app_config(APP_LABEL)
    # Permissions are normally created after all migrations (post_migrate).
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    return Permission.objects.get(content_type__app_label=APP_LABEL, codename=CODENAME)


def grant(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    group, _ = Group.objects.get_or_create(name=GROUP_NAME)
    group.permissions.add(_permission(apps))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name=GROUP_NAME):
        group.permissions.remove(_permission(apps))


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_read_records_append_only_row_level_security"),
        ("tenants", "0002_tenant_admin_group"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
