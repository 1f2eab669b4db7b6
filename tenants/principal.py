"""The authenticated caller as the API sees it: a user and their role in each tenant."""

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Principal:
    """Who is calling and which tenants they may act in; cheap to cache as a dict."""

    user_id: int
    username: str
    is_superuser: bool
    is_staff: bool
    roles: dict[int, str] = field(default_factory=dict)
    expires_at: datetime | None = None

    def role_in(self, tenant_id: int) -> str | None:
        """Return the caller's role in ``tenant_id``, or None when not a member."""
        return self.roles.get(tenant_id)

    def can_access(self, tenant_id: int) -> bool:
        """Return True when the caller may read the tenant's data."""
        return self.is_superuser or tenant_id in self.roles

    def is_expired(self, *, now: datetime) -> bool:
        """Return True when the credential behind the principal has expired at ``now``."""
        return self.expires_at is not None and self.expires_at <= now

    def to_cache(self) -> dict:
        return {
            "user_id": self.user_id,
            "username": self.username,
            "is_superuser": self.is_superuser,
            "is_staff": self.is_staff,
            "roles": list(self.roles.items()),
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_cache(cls, data: dict) -> "Principal":
        return cls(
            user_id=data["user_id"],
            username=data["username"],
            is_superuser=data["is_superuser"],
            is_staff=data["is_staff"],
            roles=dict(data["roles"]),
            expires_at=data["expires_at"],
        )


@dataclass(frozen=True)
class TenantInfo:
    """What request handling needs to know about a tenant, cacheable without the ORM."""

    id: int
    name: str
    timezone: str
    facility_ids: tuple[int, ...]


@dataclass(frozen=True)
class TokenAuth:
    """What token authentication hands a view as DRF's ``request.auth``.

    ``named_tenant`` holds the cached facts of the tenant the request's ``tenant_id`` query
    parameter names, fetched in the same Redis round trip as the principal; None when the
    request names none, the id is not one, or the facts are not cached. It says nothing
    about access: ``tenants.selectors.tenant_get_for_principal`` still decides that.
    """

    principal: Principal
    named_tenant: TenantInfo | None = None
