"""App config for tenants: organisations, facilities, memberships and API tokens."""

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and access"

    def ready(self) -> None:
        # Connect principal-cache invalidation and the OpenAPI auth description.
        from tenants import schema, signals  # noqa: F401
