"""Exactly-once note writes: the ``Idempotency-Key`` of ``POST /api/notes/``, its stored answer.

A request with a key first claims ``(tenant, user, key)`` with ``INSERT ... ON CONFLICT DO
NOTHING`` in the transaction that then records the note and stores the answer: a key is the
caller's within one tenant (the unique key includes the tenant, as Citus requires). A
concurrent request with the same key blocks on the unique index until that transaction ends:
after a commit it reads and replays the stored answer, after a rollback its own insert goes
ahead. A key whose time
is up (``IDEMPOTENCY_KEY_TTL_HOURS``) is taken over as new. Only committed writes leave a key,
so a request that failed (400, 404, 503) may be retried with the same key.
"""

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.exceptions import APIException, ValidationError

from carenotes.core.db import delete_in_batches
from carenotes.core.metrics import IDEMPOTENT_REPLAYS
from carenotes.notes.models import IDEMPOTENCY_KEY_MAX_LENGTH, IdempotencyKey

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
REPLAYED_VALUE = "true"
# 1-255 printable ASCII characters (the IETF draft's sf-string alphabet), nothing else.
IDEMPOTENCY_KEY_PATTERN = rf"^[\x20-\x7e]{{1,{IDEMPOTENCY_KEY_MAX_LENGTH}}}$"
IDEMPOTENCY_KEY_ERROR = (
    f"Must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters; "
    "send a fresh random value (e.g. a UUID) per new note."
)
IDEMPOTENCY_KEY_REUSED_ERROR = (
    "This key was already used with a different request body; send a new key for a new note."
)
IDEMPOTENCY_KEY_BUSY_ERROR = (
    "This key's earlier request kept changing while this one read it; send it again."
)
# Claim attempts before giving up: a purge may delete the row between our statements.
CLAIM_ATTEMPTS = 3
PURGE_BATCH_SIZE = 1000

_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN)
_TABLE = IdempotencyKey._meta.db_table
CLAIM_SQL = (
    f"INSERT INTO {_TABLE} (tenant_id, user_id, key, fingerprint, response_body, created_at, "
    "expires_at) VALUES (%(tenant_id)s, %(user_id)s, %(key)s, %(fingerprint)s, '', %(now)s, "
    "%(expires_at)s) "
    "ON CONFLICT (tenant_id, user_id, key) DO NOTHING RETURNING id"
)
# Waits for, then skips, a concurrent takeover: its new expires_at no longer matches.
TAKEOVER_SQL = (
    f"UPDATE {_TABLE} SET fingerprint = %(fingerprint)s, "
    "response_status = NULL, response_body = '', created_at = %(now)s, "
    "expires_at = %(expires_at)s "
    "WHERE tenant_id = %(tenant_id)s AND user_id = %(user_id)s AND key = %(key)s "
    "AND expires_at <= %(now)s RETURNING id"
)
STORED_SQL = (
    f"SELECT fingerprint, response_status, response_body FROM {_TABLE} "
    "WHERE tenant_id = %(tenant_id)s AND user_id = %(user_id)s AND key = %(key)s "
    "AND expires_at > %(now)s "
    "AND response_status IS NOT NULL"
)
STORE_SQL = (
    f"UPDATE {_TABLE} SET response_status = %s, response_body = %s WHERE tenant_id = %s AND id = %s"
)
# One short transaction per batch; rows a takeover holds are left for the next run.
PURGE_SQL = (
    f"DELETE FROM {_TABLE} WHERE id IN (SELECT id FROM {_TABLE} WHERE expires_at <= %s "
    "ORDER BY expires_at LIMIT %s FOR UPDATE SKIP LOCKED)"
)
# On Citus a batch names its tenant: FOR UPDATE needs the statement on one shard.
PURGE_TENANTS_SQL = f"SELECT DISTINCT tenant_id FROM {_TABLE} WHERE expires_at <= %s ORDER BY 1"
PURGE_TENANT_SQL = (
    f"DELETE FROM {_TABLE} WHERE tenant_id = %s AND id IN (SELECT id FROM {_TABLE} "
    "WHERE tenant_id = %s AND expires_at <= %s ORDER BY expires_at LIMIT %s "
    "FOR UPDATE SKIP LOCKED)"
)


class IdempotencyKeyReused(APIException):
    """422: the key was used before for a different request."""

    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    default_detail = {IDEMPOTENCY_HEADER: [IDEMPOTENCY_KEY_REUSED_ERROR]}
    default_code = "idempotency_key_reused"


@dataclass(frozen=True)
class Answer:
    """The status and JSON body of a write, and whether it is a replay of an earlier one."""

    status: int
    body: dict
    replayed: bool = False


def idempotency_key_parse(value: str | None) -> str | None:
    """Return the header's key, None without the header; raise ValidationError naming it."""
    if value is None:
        return None
    if not _KEY_RE.fullmatch(value):
        raise ValidationError({IDEMPOTENCY_HEADER: [IDEMPOTENCY_KEY_ERROR]})
    return value


def request_fingerprint(data) -> str:
    """Return the SHA-256 of a parsed JSON body, the same for any key order or spacing."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_ttl() -> timedelta:
    """Return how long a key is remembered (settings.IDEMPOTENCY_KEY_TTL_HOURS)."""
    return timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)


def _one(sql: str, params) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _claim(params: dict) -> int | Answer:
    """Return the id of the row claimed for this request, or the stored answer to replay."""
    for _ in range(CLAIM_ATTEMPTS):
        # A conflict waits for the transaction holding the key, so what follows reads its end.
        row = _one(CLAIM_SQL, params)
        if row is not None:
            return row[0]
        stored = _one(STORED_SQL, params)
        if stored is not None:
            fingerprint, status, body = stored
            if fingerprint != params["fingerprint"]:
                raise IdempotencyKeyReused()
            return Answer(status=status, body=json.loads(body), replayed=True)
        row = _one(TAKEOVER_SQL, params)
        if row is not None:
            return row[0]
    raise IdempotencyKeyReused({IDEMPOTENCY_HEADER: [IDEMPOTENCY_KEY_BUSY_ERROR]})


def idempotent_write(
    *,
    tenant_id: int,
    user_id: int,
    key: str,
    fingerprint: str,
    write: Callable[[], Answer],
    now: datetime | None = None,
) -> Answer:
    """Run ``write`` once per (tenant, user, key) and body; return its answer or the stored one.

    ``write`` runs in the transaction that claims the key and stores its answer; if it raises,
    nothing is stored. Raises IdempotencyKeyReused (422) for a key used with another body.
    """
    now = now or timezone.now()
    params = {
        "tenant_id": tenant_id,
        "user_id": user_id,
        "key": key,
        "fingerprint": fingerprint,
        "now": now,
        "expires_at": now + idempotency_ttl(),
    }
    with transaction.atomic():
        claimed = _claim(params)
        if isinstance(claimed, Answer):
            IDEMPOTENT_REPLAYS.inc()
            return claimed
        answer = write()
        with connection.cursor() as cursor:
            cursor.execute(STORE_SQL, [answer.status, json.dumps(answer.body), tenant_id, claimed])
    return answer


def idempotency_keys_purge(*, now: datetime, batch_size: int = PURGE_BATCH_SIZE) -> int:
    """Delete every key expired at ``now``, ``batch_size`` rows per transaction; return how many.

    Run in a scope that sees every tenant (the command uses ``rls_system``).
    """
    if not settings.DATABASE_CITUS:
        return delete_in_batches(PURGE_SQL, [now, batch_size], batch_size=batch_size, atomic=True)
    with connection.cursor() as cursor:
        cursor.execute(PURGE_TENANTS_SQL, [now])
        tenant_ids = [tenant_id for (tenant_id,) in cursor.fetchall()]
    return sum(
        delete_in_batches(
            PURGE_TENANT_SQL, [t, t, now, batch_size], batch_size=batch_size, atomic=True
        )
        for t in tenant_ids
    )
