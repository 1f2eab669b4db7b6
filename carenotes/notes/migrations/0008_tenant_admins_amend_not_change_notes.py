"""Tenant admins amend care notes instead of changing them: the "Tenant admin" group loses
``change_carenote`` and gains viewing and adding amendments.

Frozen values (migrations must not import app code); a test checks the group against
tenants.services.TENANT_ADMIN_PERMISSIONS.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP_NAME = "Tenant admin"
REMOVED = ["carenotes.change_carenote"]
ADDED = ["carenotes.view_carenoteamendment", "carenotes.add_carenoteamendment"]


def _permissions(apps, dotted_names):
    Permission = apps.get_model("auth", "Permission")
    for dotted in dotted_names:
        app_label, codename = dotted.split(".")
        yield Permission.objects.get(content_type__app_label=app_label, codename=codename)


def _regroup(apps, *, add, remove):
    # Permissions of new models are normally created after all migrations (post_migrate).
    app_config = apps.get_app_config("carenotes")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    group = apps.get_model("auth", "Group").objects.filter(name=GROUP_NAME).first()
    if group is None:  # recreated with the current list by tenants.services when needed
        return
    group.permissions.add(*_permissions(apps, add))
    group.permissions.remove(*_permissions(apps, remove))


def forward(apps, schema_editor):
    _regroup(apps, add=ADDED, remove=REMOVED)


def backward(apps, schema_editor):
    _regroup(apps, add=REMOVED, remove=ADDED)


class Migration(migrations.Migration):
    dependencies = [
        ("carenotes", "0007_care_record_history"),
        ("tenants", "0002_tenant_admin_group"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forward, backward)]
