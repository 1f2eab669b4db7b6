"""App config for tenants: organisations, facilities, memberships and API tokens."""

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and access"

    def ready(self) -> None:
        # Connect principal-cache invalidation and the OpenAPI auth description.
        # Every statement on every database connection runs under a row-level security
        # scope (tenants/rls.py).
        from django.db.backends.signals import connection_created

        from tenants import schema, signals  # noqa: F401
        from tenants.rls import db_scope_install

        connection_created.connect(db_scope_install, dispatch_uid="carenotes-db-scope")
