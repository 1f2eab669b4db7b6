"""Tenants (care organisations), their facilities, who may act in them, and API tokens."""

import functools
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


@functools.cache
def _known_timezones() -> frozenset[str]:
    # available_timezones() walks the tz database on every call (15-70 ms here).
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    """Reject anything that is not an IANA time zone name known to this machine."""
    if value not in _known_timezones():
        raise ValidationError(f"{value!r} is not a known IANA time zone (e.g. 'Europe/London').")


class Tenant(models.Model):
    """A care organisation; every tenant-scoped row carries its id."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Facility(models.Model):
    """A care home run by one tenant."""

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="facilities", db_index=False
    )
    name = models.CharField(max_length=200)

    class Meta:
        verbose_name_plural = "facilities"
        ordering = ["tenant_id", "name"]
        constraints = [
            # Target of the composite foreign keys that keep child rows inside one tenant.
            models.UniqueConstraint(fields=["tenant", "id"], name="facility_tenant_id_uniq"),
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MANAGER = "manager", "Manager"
    CARER = "carer", "Carer"


class Membership(models.Model):
    """Grants one user one role in one tenant."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant_id", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="membership_user_tenant_uniq"),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="membership_role_valid"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "user"], name="membership_tenant_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} is {self.role} of {self.tenant_id}"


class ApiToken(models.Model):
    """An API credential; only a SHA-256 digest of the key is stored, never the key itself."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    key_prefix = models.CharField(max_length=8, help_text="First characters, to recognise a key.")
    key_digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.key_prefix}… ({self.user_id})"
