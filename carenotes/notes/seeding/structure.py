"""A run's tenants, facilities, superuser and staff with memberships and tokens, built in bulk."""

import random
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractBaseUser
from django.db import router, transaction
from django.db.models.signals import post_save

from carenotes.core.cache import cache_delete_many
from carenotes.notes.seeding.config import NoteWindow, SeedConfig, note_window
from carenotes.notes.seeding.names import (
    FACILITY_NAMES,
    demo_password,
    demo_token_key,
    facility_name,
    seed_tag,
    staff_roles,
    staff_username,
    superuser_username,
    tenant_name,
    tenant_slug,
)
from tenants.models import ApiToken, Facility, Membership, Role, Tenant
from tenants.selectors import principal_token_cache_key, principal_user_cache_key, token_digest
from tenants.services import API_KEY_PREFIX_LENGTH, tenant_admin_group_get

# Carers after the first few have no API token (they only author notes).
CARERS_WITH_TOKENS = 2
TOKEN_NAME = "demo seed"
# Rows per INSERT of bulk_create: bounds the statement size at the largest allowed runs.
BULK_BATCH_ROWS = 5_000


@dataclass
class TenantPlan:
    """One created tenant: its window of note times, facilities, note authors, credentials."""

    tenant: Tenant
    window: NoteWindow
    facility_ids: list[int]
    author_ids: list[int]
    users: list[dict]


def structure_create(*, config: SeedConfig, rng: random.Random) -> tuple[str, list[TenantPlan]]:
    """Create the run's rows in a few statements; return the superuser's name and the plans.

    The rows are what the row-by-row services would have made: tenants validated like
    ``tenant_create``; tenant admins staff and in the "Tenant admin" group, nobody else,
    as ``membership_grant`` / ``admin_access_sync`` leave them; tokens stored like
    ``api_token_create`` stores them. Every user has an unusable password until
    ``passwords_set``. The skipped save signals' work is done once at the end
    (``_skipped_signals_replay``).
    """
    tenants = _tenants_create(config=config)
    facility_ids = _facilities_create(tenants=tenants, config=config, rng=rng)
    superuser, staff = _users_create(config=config)
    plans = [
        TenantPlan(
            tenant=tenant,
            window=note_window(config=config, timezone_name=tenant.timezone),
            facility_ids=facility_ids[tenant.pk],
            author_ids=[],
            users=[],
        )
        for tenant in tenants
    ]
    tokens = _access_grant(config=config, plans=plans, staff=staff)
    _skipped_signals_replay(tenants=tenants, users=[superuser, *staff], tokens=tokens)
    return superuser.username, plans


def _tenants_create(*, config: SeedConfig) -> list[Tenant]:
    tenants = [
        Tenant(
            name=tenant_name(index),
            slug=tenant_slug(seed=config.seed, number=index + 1),
            timezone=config.tenant_timezone(index),
        )
        for index in range(config.tenants)
    ]
    for tenant in tenants:
        # tenant_create's field validation; the slug's uniqueness is the database's (the
        # run refused already if this seed's tenants exist).
        tenant.full_clean(validate_unique=False)
    return Tenant.objects.bulk_create(tenants, batch_size=BULK_BATCH_ROWS)


def _facilities_create(
    *, tenants: list[Tenant], config: SeedConfig, rng: random.Random
) -> dict[int, list[int]]:
    facilities = [
        Facility(
            tenant_id=tenant.pk,
            name=facility_name(tenant_index=index, number=n, kind=rng.choice(FACILITY_NAMES)),
        )
        for index, tenant in enumerate(tenants)
        for n in range(1, config.facilities_per_tenant + 1)
    ]
    by_tenant: dict[int, list[int]] = {tenant.pk: [] for tenant in tenants}
    for facility in Facility.objects.bulk_create(facilities, batch_size=BULK_BATCH_ROWS):
        by_tenant[facility.tenant_id].append(facility.pk)
    return by_tenant


def _users_create(*, config: SeedConfig) -> tuple[AbstractBaseUser, list[AbstractBaseUser]]:
    """Create the superuser and every tenant's staff (admins are staff users, see above)."""
    user_model = get_user_model()
    unusable = make_password(None)  # replaced by passwords_set before commit
    superuser = user_model(
        username=superuser_username(config.seed),
        password=unusable,
        is_superuser=True,
        is_staff=True,
    )
    staff = [
        user_model(
            username=staff_username(seed=config.seed, tenant_number=number, suffix=suffix),
            password=unusable,
            is_staff=role == Role.ADMIN,
        )
        for number in range(1, config.tenants + 1)
        for role, suffix in staff_roles(config.staff_per_tenant)
    ]
    created = user_model.objects.bulk_create([superuser, *staff], batch_size=BULK_BATCH_ROWS)
    return created[0], created[1:]


def _access_grant(
    *, config: SeedConfig, plans: list[TenantPlan], staff: list[AbstractBaseUser]
) -> list[ApiToken]:
    """Create the memberships, admin group links and tokens; fill each plan's users."""
    roles = staff_roles(config.staff_per_tenant)
    memberships, tokens, admin_ids = [], [], []
    users = iter(staff)
    for plan in plans:
        carers_with_token = 0
        for role, _ in roles:
            user = next(users)
            memberships.append(Membership(user_id=user.pk, tenant_id=plan.tenant.pk, role=role))
            if role == Role.ADMIN:
                admin_ids.append(user.pk)
            if role == Role.CARER:
                plan.author_ids.append(user.pk)
                carers_with_token += 1
                if carers_with_token > CARERS_WITH_TOKENS:
                    continue
            key = demo_token_key(seed=config.seed, username=user.username)
            tokens.append(
                ApiToken(
                    user_id=user.pk,
                    name=TOKEN_NAME,
                    key_prefix=key[:API_KEY_PREFIX_LENGTH],
                    key_digest=token_digest(key),
                )
            )
            entry = {"username": user.username, "role": role, "token": key}
            if role == Role.ADMIN:
                entry.update(admin_login=True, password=demo_password(config.seed))
            plan.users.append(entry)
    Membership.objects.bulk_create(memberships, batch_size=BULK_BATCH_ROWS)
    group_link = get_user_model().groups.through
    group_id = tenant_admin_group_get().pk
    group_link.objects.bulk_create(
        [group_link(user_id=user_id, group_id=group_id) for user_id in admin_ids],
        batch_size=BULK_BATCH_ROWS,
    )
    return ApiToken.objects.bulk_create(tokens, batch_size=BULK_BATCH_ROWS)


def _skipped_signals_replay(
    *, tenants: list[Tenant], users: list[AbstractBaseUser], tokens: list[ApiToken]
) -> None:
    """Do what the post_save receivers bulk_create skipped would have done, and only that.

    Users, memberships, tokens (tenants/signals.py): each save drops the user's cached
    principals (by user and by each of their tokens) now and after commit; here one
    delete of exactly those keys, now and after commit. Tenants and facilities
    (tenants/signals.py, stats/signals.py): each save drops the tenant's cached facts and
    bumps its stats generation, now and after commit. The stats receivers live in a layer
    this app may not import, so each tenant's post_save is sent, which runs them all once;
    a facility's receivers do the same work for its tenant, so they are not sent again.
    """
    keys = [principal_user_cache_key(user.pk) for user in users]
    keys += [principal_token_cache_key(token.key_digest) for token in tokens]
    cache_delete_many(keys)
    transaction.on_commit(lambda: cache_delete_many(keys))
    using = router.db_for_write(Tenant)
    for tenant in tenants:
        post_save.send(
            sender=Tenant, instance=tenant, created=True, update_fields=None, raw=False, using=using
        )


def passwords_set(*, seed: int, encoded: str) -> None:
    """Give every user of this run the demo password (one PBKDF2 hash, shared)."""
    get_user_model().objects.filter(username__startswith=f"{seed_tag(seed)}-").update(
        password=encoded
    )
