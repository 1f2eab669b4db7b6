"""seed_notes structure: bulk-built rows keep the services' invariants and their cache effects."""

import json
import random
from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from carenotes.notes import seeding
from carenotes.notes.seeding.names import superuser_username
from carenotes.notes.seeding.structure import structure_create
from carenotes.notes.tests.test_seed_notes import (
    SMALL,
    _call,
    _compact_tables_afterwards,  # noqa: F401 (autouse: compacts what these tests bloat)
    _seed,
    _small_args,
)
from tenants.models import ApiToken, Membership, Role, Tenant
from tenants.selectors import (
    principal_token_cache_key,
    principal_user_cache_key,
    tenant_info_cache_key,
    token_digest,
)
from tenants.services import API_KEY_PREFIX_LENGTH, TENANT_ADMIN_GROUP, admin_access_sync

pytestmark = pytest.mark.django_db


def _access() -> dict[str, tuple]:
    """Return each seeded user's (is_staff, is_superuser, group names, tenant roles)."""
    users = (
        get_user_model()
        .objects.filter(username__startswith="demo-")
        .prefetch_related("groups", "memberships")
    )
    return {
        user.username: (
            user.is_staff,
            user.is_superuser,
            sorted(group.name for group in user.groups.all()),
            sorted((m.tenant_id, m.role) for m in user.memberships.all()),
        )
        for user in users
    }


def test_admins_alone_are_staff_in_the_tenant_admin_group_and_the_service_agrees():
    result = _seed()
    access = _access()
    for username, (is_staff, is_superuser, groups, roles) in access.items():
        if username == superuser_username(SMALL["seed"]):
            assert (is_staff, is_superuser, groups, roles) == (True, True, [], [])
            continue
        role = roles[0][1]
        assert len(roles) == 1 and roles[0][0] in result.tenant_ids
        admin = role == Role.ADMIN
        assert (is_staff, is_superuser, groups) == (admin, False, [TENANT_ADMIN_GROUP] * admin)
    # The rule membership_grant applies finds nothing to change in the bulk-built rows.
    for user in get_user_model().objects.filter(username__startswith="demo-"):
        admin_access_sync(user=user)
    assert _access() == access
    assert [is_staff for is_staff, *_ in access.values()].count(True) == 1 + SMALL["tenants"]


def test_tokens_are_stored_like_api_token_create_stores_them(tmp_path):
    credentials = tmp_path / "c.json"
    _call(*_small_args(), credentials=credentials, quiet=True)
    users = [u for t in json.loads(credentials.read_text())["tenants"] for u in t["users"]]
    tokens = ApiToken.objects.select_related("user")
    stored = [
        (t.user.username, t.name, t.key_prefix, t.key_digest, t.expires_at, t.revoked_at)
        for t in tokens
    ]
    expected = [
        (u["username"], "demo seed", u["token"][:API_KEY_PREFIX_LENGTH], token_digest(u["token"]))
        for u in users
    ]
    assert sorted(stored) == sorted((*row, None, None) for row in expected)


def test_a_tenant_admin_can_use_the_tenant_scoped_admin(tmp_path, client):
    credentials = tmp_path / "c.json"
    _call(*_small_args(), credentials=credentials, quiet=True)
    tenant = json.loads(credentials.read_text())["tenants"][0]
    admin = tenant["users"][0]
    assert client.login(username=admin["username"], password=admin["password"])
    response = client.get("/admin/tenants/membership/")
    assert response.status_code == HTTPStatus.OK
    memberships = set(response.context["cl"].result_list)
    assert memberships == set(Membership.objects.filter(tenant_id=tenant["tenant_id"]))


def test_the_structure_takes_the_same_statements_for_2_and_for_6_tenants():
    def statements(tenants: int) -> int:
        config = seeding.seed_config_build(**{**SMALL, "tenants": tenants, "seed": tenants})
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            structure_create(config=config, rng=random.Random(config.seed))
            transaction.set_rollback(True)
        return len(queries)

    assert statements(2) == statements(6)
    assert Tenant.objects.count() == 0


def test_cached_principals_and_tenant_facts_of_reused_ids_are_dropped_after_commit(
    django_capture_on_commit_callbacks,
):
    # On an emptied database the ids start again at 1: entries cached for the old rows
    # with those ids must go, as the skipped save signals would have made them go.
    users = 1 + SMALL["tenants"] * SMALL["staff_per_tenant"]
    stale_users = [principal_user_cache_key(pk) for pk in range(1, users + 1)]
    stale_tenants = [tenant_info_cache_key(pk) for pk in range(1, SMALL["tenants"] + 1)]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = _seed()
        token_keys = [
            principal_token_cache_key(digest)
            for digest in ApiToken.objects.values_list("key_digest", flat=True)
        ]
        cache.set_many(dict.fromkeys(stale_users + stale_tenants + token_keys, "stale"))
    assert callbacks  # the after-commit drops ran
    assert cache.get_many(stale_users + stale_tenants + token_keys) == {}
    # The stats generations are bumped too (stats/tests/test_note_writes_invalidate.py).
    assert result.tenant_ids == [1, 2, 3]
    assert set(get_user_model().objects.values_list("pk", flat=True)) == set(range(1, users + 1))
