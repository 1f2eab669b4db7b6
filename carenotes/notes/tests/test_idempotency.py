"""Idempotency keys' expiry: the purge deletes expired keys only, in batches, without waiting."""

import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from carenotes.notes.idempotency import idempotency_keys_purge, request_fingerprint
from carenotes.notes.models import IdempotencyKey
from carenotes.notes.tests.factories import PatientFactory
from tenants.rls import rls_system
from tenants.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LOCK_TIMEOUT = 10


def _keys(*, expired: int, live: int) -> tuple[list[int], list[int]]:
    """Create keys of one user: ``expired`` ones an hour past, ``live`` ones an hour ahead."""
    patient, user, now = PatientFactory(), UserFactory(), timezone.now()
    ids: dict[bool, list[int]] = {True: [], False: []}
    for number in range(expired + live):
        is_expired = number < expired
        key = IdempotencyKey.objects.create(
            tenant_id=patient.tenant_id,
            user=user,
            key=f"key-{number}",
            fingerprint=request_fingerprint({"n": number}),
            response_status=201,
            response_body="{}",
            created_at=now - timedelta(hours=2),
            expires_at=now + (timedelta(hours=-1) if is_expired else timedelta(hours=1)),
        )
        ids[is_expired].append(key.pk)
    return ids[True], ids[False]


def _remaining() -> list[int]:
    return sorted(IdempotencyKey.objects.values_list("pk", flat=True))


def test_the_fingerprint_ignores_key_order_and_tells_bodies_apart():
    assert request_fingerprint({"a": 1, "b": "x"}) == request_fingerprint({"b": "x", "a": 1})
    assert request_fingerprint({"a": 1}) != request_fingerprint({"a": 2})
    assert len(request_fingerprint({})) == 64


def test_the_purge_deletes_only_expired_keys_batch_by_batch():
    expired, live = _keys(expired=5, live=2)
    assert idempotency_keys_purge(now=timezone.now(), batch_size=2) == len(expired)
    assert _remaining() == sorted(live)


def test_a_key_expiring_exactly_now_is_purged():
    now = timezone.now()
    (expired,), (live,) = _keys(expired=1, live=1)
    IdempotencyKey.objects.filter(pk=expired).update(expires_at=now)
    assert idempotency_keys_purge(now=now) == 1
    assert _remaining() == [live]


@pytest.mark.django_db(transaction=True)
def test_the_purge_skips_a_key_a_request_holds_instead_of_waiting_for_it():
    expired, _ = _keys(expired=3, live=0)
    held, released = threading.Event(), threading.Event()

    def hold() -> None:
        # What a request taking over an expired key does: lock its row until it commits.
        with rls_system(), transaction.atomic():
            IdempotencyKey.objects.select_for_update().get(pk=expired[0])
            held.set()
            released.wait(LOCK_TIMEOUT)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(LOCK_TIMEOUT)
        with connection.cursor() as cursor:  # a wait would fail the test, not hang it
            cursor.execute("SET lock_timeout = '2s'")
        assert idempotency_keys_purge(now=timezone.now()) == 2
        assert _remaining() == [expired[0]]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
        released.set()
        holder.join(LOCK_TIMEOUT)
    assert idempotency_keys_purge(now=timezone.now()) == 1  # the next run takes it


def test_the_command_purges_as_the_system_role_and_says_how_many():
    expired, live = _keys(expired=3, live=1)
    out = StringIO()
    call_command("purge_idempotency_keys", "--batch-size", "2", stdout=out)
    assert out.getvalue() == f"Deleted {len(expired)} expired idempotency keys.\n"
    assert _remaining() == live


@pytest.mark.parametrize("size", ["0", "-5", "100001"])
def test_the_command_refuses_a_batch_size_out_of_range(size):
    with pytest.raises(
        CommandError, match=f"--batch-size must be between 1 and 100000, got {size}"
    ):
        call_command("purge_idempotency_keys", "--batch-size", size)
